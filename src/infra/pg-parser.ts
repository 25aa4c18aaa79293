/**
 * The one adapter of `libpg-query`: PostgreSQL's own parser (the server's gram.y, compiled to
 * WebAssembly), so SQL from the config is read exactly as the server would read it. The module
 * loads asynchronously once per process; the config schemas parse synchronously, so every entry
 * point awaits `sqlParserReady` before it reads a config (the action runner, the test preload, the
 * bench and the sandbox).
 */
import { loadModule, parseSync } from 'libpg-query';

/** A parse-tree node as libpg-query returns it: `{ NodeType: { ...fields } }`. */
export type PgNode = Record<string, unknown>;

export interface ParsedSql {
  /** The statements, each the inner node of a RawStmt (e.g. `{ SelectStmt: {...} }`). */
  statements: PgNode[];
}

/** SQL the parser refused: its message, and the 0-based character where it stopped. */
export class SqlSyntaxError extends Error {
  constructor(
    message: string,
    readonly position: number | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'SqlSyntaxError';
  }
}

export const sqlParserReady: Promise<void> = loadModule();

/** Parses SQL text into its statements; throws SqlSyntaxError when PostgreSQL would not accept it. */
export function parseSql(text: string): ParsedSql {
  let tree: { stmts?: Array<{ stmt?: PgNode }> };
  try {
    tree = parseSync(text) as typeof tree;
  } catch (e) {
    const err = e as Error & { sqlDetails?: { cursorPosition?: number } };
    // The module's state lives in libpg-query itself (one per process, whoever loaded it).
    if (/not initialized/i.test(err.message))
      throw new Error('the SQL parser is not loaded yet: await sqlParserReady (src/infra/pg-parser.ts) before reading a config', { cause: e });
    throw new SqlSyntaxError(err.message, err.sqlDetails?.cursorPosition, { cause: e });
  }
  return { statements: (tree.stmts ?? []).map((s) => s.stmt ?? {}) };
}
