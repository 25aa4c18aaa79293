// Loaded by scripts/test.sh (node --import) into every test process: PostgreSQL's parser (a
// WebAssembly module) loads asynchronously, and the config schemas that check SQL parse synchronously.
import parser from 'libpg-query';
await parser.loadModule();
