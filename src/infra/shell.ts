/**
 * Building commands for the remote POSIX shell. Every value that comes from outside is quoted;
 * only `raw()` fragments written in this code base are pasted as they are.
 */

const SAFE = /^[A-Za-z0-9_\-./:=@%+,]+$/;

export class Raw {
  constructor(readonly text: string) {}
}

/** A fragment of shell syntax written in twinstack's own code (never user input). */
export function raw(text: string): Raw {
  return new Raw(text);
}

/** Quotes one argument for sh. NUL cannot be passed through a shell at all, so it is refused. */
export function quote(arg: string): string {
  if (arg.includes('\0')) throw new Error('a command argument contains a NUL byte');
  if (arg === '') return "''";
  if (SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export type Arg = string | number | Raw;

// Array.isArray narrows a readonly array to any[]; this keeps the element type.
const isArgList = (value: Arg | readonly Arg[]): value is readonly Arg[] => Array.isArray(value);

function render(value: Arg | readonly Arg[]): string {
  if (isArgList(value)) return value.map((v) => render(v)).join(' ');
  if (value instanceof Raw) return value.text;
  return quote(String(value));
}

/** An argument vector as one quoted command line. */
export function argv(...args: Array<Arg | readonly Arg[]>): string {
  return args.map((a) => render(a)).join(' ');
}

/**
 * Tagged template for shell scripts: `sh\`cd ${dir} && git fetch ${remote}\``.
 * Interpolated strings and numbers are quoted, arrays become quoted words, `raw()` is pasted.
 */
export function sh(strings: TemplateStringsArray, ...values: Array<Arg | readonly Arg[]>): string {
  let out = strings[0];
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1];
  });
  return out;
}

/**
 * A host script from a `.sh` file under src/ (checked by shellcheck, shipped beside the bundles),
 * its parameters set in front as upper-case shell variables and `args`, when given, as its
 * positional parameters ("$@"). Every value is quoted, and stays visible in the command and the
 * debug log; the file's opening comment is not sent.
 */
export function hostScript(file: string, params: Record<string, string | number>, args?: readonly string[]): string {
  const lines = file.split('\n');
  let start = 0;
  while (start < lines.length && (lines[start].startsWith('#') || lines[start].trim() === '')) start++;
  const prelude = Object.entries(params).map(([name, value]) => {
    if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`bad host script parameter name ${name}`);
    return `${name}=${quote(String(value))}`;
  });
  // A list (paths, ids) becomes the script's positional parameters, each one quoted word.
  if (args) prelude.push(args.length ? `set -- ${argv(args)}` : 'set --');
  const body = lines.slice(start);
  return (prelude.length ? [prelude.join('; '), ...body] : body).join('\n').replace(/\n+$/, '');
}
