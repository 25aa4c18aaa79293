/**
 * Shell logic lives in .sh files (under shellcheck, shipped beside the bundles), never in
 * TypeScript strings: an `sh` template in src/ is one command. This reads every source file with
 * TypeScript's own parser and looks at the shell text written in the code around each `sh` template
 * (its literal parts, the string literals it is concatenated with, and the template it is pasted
 * into); the values interpolated into it are data and are not looked at.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

const root = path.join(__dirname, '..', '..');

/** What makes a line more than one command: a list, a pipe, a condition, a loop, a substitution. */
const LOGIC = /&&|\|\||\||;|\$\(|(?:^|[\s;&|({])(?:if|for|while|until|case)\s/;

/**
 * The only templates that may hold logic, each with the reason. Keyed by file and the template's
 * first line as written in the source.
 */
const ALLOWED: Record<string, string> = {
  ['src/domain/environment.ts sh`[ -n "$c" ] || { echo ${`no running ${db.service} container in compose project ${this.cfg.project}`} >&2; exit 3; }; `']:
    "dbTool: one braced group that callers put inside pipes and give redirections (`… | psql`, `pg_restore < dump`); a script file run from the host cannot stand there, and its `exit 3` must end the caller's script",
  ['src/domain/environment.ts sh`{ c=$(${raw(find)}) || exit ${NO_TASK_HERE}; e=\\${c#* }; c=\\${c%% *}; `']:
    "dbTool on a swarm: the same braced group as the compose one above, the db task's container and its node's endpoint found by task-container.sh (which says why when there is none)",
  ['src/infra/ssh.ts sh`cd ${options.cwd}`']:
    "the Host's cwd option itself (SshHost.wrap): the caller's command runs inside `cd <dir> && { … }`, so it does not run at all when cd fails",
};

interface Finding {
  where: string;
  source: string;
}

/** The shell text written in the code of a template: its literal parts, interpolations left out. */
function literalText(t: ts.TemplateLiteral): string {
  if (ts.isNoSubstitutionTemplateLiteral(t)) return t.text;
  return [t.head.text, ...t.templateSpans.map((s) => s.literal.text)].join(' X ');
}

/** The outermost `a + b + …` the node is an operand of (the node itself when none). */
function concatenation(node: ts.Node): ts.Node {
  let n = node;
  while (n.parent && (ts.isParenthesizedExpression(n.parent) || (ts.isBinaryExpression(n.parent) && n.parent.operatorToken.kind === ts.SyntaxKind.PlusToken))) {
    n = n.parent;
  }
  return n;
}

/** The string and plain template literals of a `+` chain, `sh` templates included. */
function chainTexts(node: ts.Node): string[] {
  if (ts.isParenthesizedExpression(node)) return chainTexts(node.expression);
  if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.PlusToken) return [...chainTexts(node.left), ...chainTexts(node.right)];
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return [node.text];
  if (ts.isTemplateExpression(node)) return [literalText(node)];
  if (ts.isTaggedTemplateExpression(node)) return [literalText(node.template)];
  return [];
}

/** Every `sh` template of a file whose surrounding shell text holds logic. */
export function shellLogic(file: string, text: string): Finding[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const found: Finding[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isTaggedTemplateExpression(node) && ts.isIdentifier(node.tag) && node.tag.text === 'sh') {
      const texts = chainTexts(concatenation(node));
      // Pasted into a plain template (`…${sh`${x}`} | …`): that template is the script.
      const span = node.parent;
      if (ts.isTemplateSpan(span) && ts.isTemplateExpression(span.parent) && !ts.isTaggedTemplateExpression(span.parent.parent)) {
        texts.push(literalText(span.parent));
      }
      if (texts.some((t) => LOGIC.test(t))) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart());
        found.push({ where: `${file}:${line + 1}`, source: node.getText().split('\n')[0] });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/**
 * Shell logic outside `sh` templates: a string literal or plain template given as the command to
 * `run`, `spawn` or `exec` (host.run('a && b')), and a list of commands joined with `&&`, `||` or
 * `|` (cmds.join(' && ')).
 */
export function commandLogic(file: string, text: string): Finding[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const found: Finding[] = [];
  const report = (node: ts.Node): void => {
    const { line } = source.getLineAndCharacterOfPosition(node.getStart());
    found.push({ where: `${file}:${line + 1}`, source: node.getText().split('\n')[0] });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) && node.arguments.length) {
      const method = node.expression.name.text;
      const first = node.arguments[0];
      // The host's own methods (host.run, this.host.run, run.ctx.host.spawn), not DevServer.exec's SQL.
      const onHost = /host$/i.test(node.expression.expression.getText());
      if (onHost && ['run', 'spawn', 'exec'].includes(method) && chainTexts(first).some((t) => LOGIC.test(t))) report(node);
      // SQL joins with `||` and messages with `; ` or ` | `: only `&&` is a list of commands for sure.
      if (method === 'join' && (ts.isStringLiteral(first) || ts.isNoSubstitutionTemplateLiteral(first)) && first.text.includes('&&')) report(node);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const PIPE =
  "pg_dump's and psql's dbTool groups piped into one another on the host (the rows never pass through the runner); a dbTool group cannot be a script file (see ALLOWED above)";

/** Commands outside `sh` templates that may hold logic, each with the reason; keyed as ALLOWED is. */
const ALLOWED_COMMANDS: Record<string, string> = {
  ["src/resample/engine.ts run.ctx.host.run(`${prodDump(run.prod, 'post-data')} | ${psql(dev, staging.names.staging, { tuples: true, output: '/dev/null' })}`, {"]:
    PIPE,
  ['src/resample/engine.ts [']: PIPE,
  ['src/resample/engine.ts run.ctx.host.run(']: PIPE,
};

function sourceFiles(dir: string): string[] {
  return fs
    .readdirSync(path.join(root, dir), { recursive: true })
    .map((f) => path.join(dir, String(f)))
    .filter((f) => f.endsWith('.ts'))
    .sort();
}

describe('sh templates in src/', () => {
  const files = sourceFiles('src');
  const findings = files.flatMap((f) => shellLogic(f, fs.readFileSync(path.join(root, f), 'utf8')));

  it('are each one command: anything with a list, a pipe, a condition, a loop or $(…) is a .sh file', () => {
    const unexplained = findings.filter((f) => !(`${f.where.replace(/:\d+$/, '')} ${f.source}` in ALLOWED));
    assert.deepEqual(
      unexplained.map((f) => `${f.where}: ${f.source}`),
      [],
      'move these into a .sh file beside the module (read with hostScript), or split them into single commands',
    );
  });

  it('allow logic only where the list above says why, and every entry there is still needed', () => {
    for (const [key, why] of Object.entries(ALLOWED)) {
      assert.ok(why.length > 20, `${key}: say why`);
      assert.ok(
        findings.some((f) => `${f.where.replace(/:\d+$/, '')} ${f.source}` === key),
        `${key} is allowed but no longer found`,
      );
    }
  });

  it('the check catches a list, a pipe, a condition and a pasted quote, and passes one command', () => {
    const sample = [
      'const a = sh`mkdir -p ${dir} && chmod 700 ${dir}`;',
      "const b = sh`printf '%s' ${sql} | ` + run;",
      'const c = sh`if [ -f ${f} ]; then cat ${f}; fi`;',
      'const d = `cd ${sh`${dir}`} 2>/dev/null || exit 0`;',
      "const e = sh`cat -- ${path}` + '\\n' + sh`rm -f ${path}` + '; true';",
      'const ok = sh`docker logs --tail ${n} ${c} 2>&1`;',
      "const ok2 = sh`git for-each-ref --contains ${sha} --format='%(refname:strip=3)' ${ref}`;",
    ].join('\n');
    assert.deepEqual(
      shellLogic('sample.ts', sample).map((f) => f.where),
      ['sample.ts:1', 'sample.ts:2', 'sample.ts:3', 'sample.ts:4', 'sample.ts:5', 'sample.ts:5'],
    );
  });
});

describe('commands given to run, spawn and exec in src/', () => {
  const files = sourceFiles('src');
  const findings = files.flatMap((f) => commandLogic(f, fs.readFileSync(path.join(root, f), 'utf8')));
  const key = (f: Finding) => `${f.where.replace(/:\d+$/, '')} ${f.source}`;

  it('are each one command: a list, a pipe, a condition or $(…) is a .sh file', () => {
    assert.deepEqual(
      findings.filter((f) => !(key(f) in ALLOWED_COMMANDS)).map((f) => `${f.where}: ${f.source}`),
      [],
      'move these into a .sh file beside the module (read with hostScript), or make them one command',
    );
  });

  it('allow logic only where the list above says why, and every entry there is still needed', () => {
    for (const [k, why] of Object.entries(ALLOWED_COMMANDS)) {
      assert.ok(why.length > 20, `${k}: say why`);
      assert.ok(
        findings.some((f) => key(f) === k),
        `${k} is allowed but no longer found`,
      );
    }
  });

  it('the check catches a literal list, pipe, condition or substitution, and a joined list, and passes one command', () => {
    const sample = [
      "await host.run('nproc && cat /proc/meminfo', { quiet: true });",
      'host.spawn(`docker logs ${c} | tail -n 5`);',
      "await this.host.run('if [ -d /x ]; then echo y; fi');",
      'await host.exec(`echo $(date)`);',
      "const cmd = pairs.map((p) => argv('docker', 'tag', p.from, p.to)).join(' && ');",
      "await host.run('mktemp -d /tmp/x.XXXXXXXX', { quiet: true });",
      'await host.run(sh`rm -rf ${tmp}`);',
      "const msg = problems.join('; ');",
      "await server.exec('ANALYZE; VACUUM;', 'analyzing');",
    ].join('\n');
    assert.deepEqual(
      commandLogic('sample.ts', sample).map((f) => f.where),
      ['sample.ts:1', 'sample.ts:2', 'sample.ts:3', 'sample.ts:4', 'sample.ts:5'],
    );
  });
});
