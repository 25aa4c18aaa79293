/**
 * Env files as docker compose reads them, and the digest preflight compares. Values are secrets:
 * they are hashed as soon as the file is parsed, and nothing built from them (messages, the
 * summary, outputs) ever contains one; findings name keys only.
 */
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { scalarText } from '../infra/units';

/** Env file keys whose values are secrets: masked in the log as soon as the file is read. */
export const SECRET_KEY = /(PASS|SECRET|TOKEN|PRIVATE|CREDENTIAL|API_?KEY|_KEY$|DSN|AUTH|SALT|DATABASE_URL|_HASH$)/i;

export class EnvFileError extends Error {
  override name = 'EnvFileError';
}

/**
 * Parses env file text the way compose's dotenv reader does: blank lines and `#` comments skipped,
 * an optional `export ` prefix, `KEY=value` (and the YAML-like `KEY: value`), unquoted values cut at
 * ` #` and trimmed, single quotes literal, double quotes with backslash escapes, both quotes may
 * span lines, `${VAR}`, `${VAR:-default}`, `$VAR` expanded from keys above (not from the shell, which
 * preflight does not see), `$$` and `\$` for a literal `$`. A bare `KEY` line takes its value from
 * the shell, so it is left out. Errors name the line, never the value.
 */
export function parseEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const src = text.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n');
  let i = 0;
  let line = 1;
  const n = src.length;
  const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\v' || c === '\f' || c === '\r';

  while (i < n) {
    // Skip blank space and comment lines up to the next statement.
    while (i < n && (isSpace(src[i]) || src[i] === '\n')) {
      if (src[i] === '\n') line++;
      i++;
    }
    if (i >= n) break;
    if (src[i] === '#') {
      while (i < n && src[i] !== '\n') i++;
      continue;
    }
    const exportMatch = /^export[ \t]+/.exec(src.slice(i, i + 20));
    if (exportMatch) i += exportMatch[0].length;

    let keyEnd = i;
    while (keyEnd < n && !'=:\n'.includes(src[keyEnd])) keyEnd++;
    const key = src.slice(i, keyEnd).replace(/[ \t\r]+$/, '');
    if (!/^[A-Za-z0-9_.\-[\]]+$/.test(key)) {
      // Never the text itself: a line without "=" may be a pasted secret.
      throw new EnvFileError(`line ${line}: the text before "=" is not a variable name (letters, digits, _ . - [ ]), or the line has no "="`);
    }
    if (keyEnd >= n || src[keyEnd] === '\n') {
      i = keyEnd; // A bare key inherits from the shell.
      continue;
    }
    i = keyEnd + 1;
    while (i < n && isSpace(src[i])) i++;

    let value: string;
    const q = src[i];
    if (q === '"' || q === "'") {
      const startLine = line;
      let j = i + 1;
      let chars = '';
      let escaped = false;
      let closed = false;
      for (; j < n; j++) {
        const c = src[j];
        if (c === '\n') line++;
        if (c !== q) {
          if (!escaped && c === '\\') {
            escaped = true;
            continue;
          }
          if (escaped) {
            escaped = false;
            chars += '\\';
          }
          chars += c;
          continue;
        }
        if (escaped) {
          escaped = false;
          chars += c;
          continue;
        }
        closed = true;
        break;
      }
      if (!closed) throw new EnvFileError(`line ${startLine}: a quoted value is not closed`);
      value = q === '"' ? expandVariables(expandEscapes(chars), out, startLine) : chars;
      i = j + 1;
      // The rest of the line after the closing quote can only be a comment.
      while (i < n && src[i] !== '\n') i++;
    } else {
      let j = i;
      while (j < n && src[j] !== '\n') j++;
      let raw = src.slice(i, j);
      const comment = raw.indexOf(' #');
      if (comment >= 0) raw = raw.slice(0, comment);
      value = expandVariables(raw.replace(/\s+$/, ''), out, line);
      i = j;
    }
    if (/^\s*\d/.test(key)) continue; // compose ignores keys that start with a digit
    out.set(key, value);
  }
  return out;
}

const ESCAPES: Record<string, string> = { a: '\x07', b: '\b', c: '', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '"': '"', '\\': '\\' };

function expandEscapes(s: string): string {
  return s.replace(/\\(?:([abcfnrtv"\\$])|0(\d{0,3}))/g, (_m, ch: string | undefined, oct: string | undefined) => {
    if (ch === '$') return '$$'; // left for the expansion step, as compose does
    if (ch !== undefined) return ESCAPES[ch];
    return String.fromCharCode(parseInt(oct || '0', 8));
  });
}

/** `${VAR}`, `${VAR:-x}`, `${VAR-x}`, `${VAR:+x}`, `${VAR+x}`, `${VAR:?msg}`, `$VAR`, `$$`. */
function expandVariables(s: string, vars: Map<string, string>, line: number): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = s[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const close = matchingBrace(s, i + 1);
      if (close < 0) throw new EnvFileError(`line ${line}: a \${...} is not closed`);
      out += substitute(s.slice(i + 2, close), vars, line);
      i = close + 1;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(i + 1));
    if (m) {
      out += vars.get(m[0]) ?? '';
      i += 1 + m[0].length;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

function matchingBrace(s: string, open: number): number {
  let depth = 0;
  for (let j = open; j < s.length; j++) {
    if (s[j] === '{') depth++;
    else if (s[j] === '}' && --depth === 0) return j;
  }
  return -1;
}

function substitute(expr: string, vars: Map<string, string>, line: number): string {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+?])([\s\S]*))?$/.exec(expr);
  if (!m)
    throw new EnvFileError(`line ${line}: a \${...} is not a valid substitution (\${NAME}, \${NAME:-default}, \${NAME:?message}); write a literal $ as $$`);
  const [, name, op, arg = ''] = m;
  const value = vars.get(name);
  const unsetOrEmpty = value === undefined || (op?.startsWith(':') && value === '');
  switch (op) {
    case undefined:
      return value ?? '';
    case ':-':
    case '-':
      return unsetOrEmpty ? expandVariables(arg, vars, line) : value;
    case ':+':
    case '+':
      return unsetOrEmpty ? '' : expandVariables(arg, vars, line);
    default:
      // `:?` / `?`: compose stops with the message; the key is what preflight can report.
      if (unsetOrEmpty) throw new EnvFileError(`line ${line}: ${name} is required by a \${${name}${op}...} expansion but not set above`);
      return value;
  }
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * What preflight keeps of an env file: each key's value as a sha256 hash, and the host names in
 * URL-valued keys, hashed as well. Comparing two digests says whether values are equal without
 * either value being at hand.
 */
export interface EnvDigest {
  /** key -> sha256 of its value; empty values are kept (they hash like any other). */
  hashes: Map<string, string>;
  /** key -> sha256 of the lower-cased host name the value names (a URL's host, or a bare domain). */
  hosts: Map<string, string>;
  /** Non-secret facts read from the file for other checks. */
  vaultPath?: string;
  profiles: string[];
}

/** The host a value names: a URL's host, an e-mail's domain, or a bare domain. */
export function hostOf(value: string): string | undefined {
  const v = value.trim();
  if (!v) return undefined;
  try {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return new URL(v).hostname.toLowerCase().replace(/^\[|\]$/g, '') || undefined;
  } catch {
    return undefined;
  }
  const d = v
    .replace(/^[^@\s]*@/, '')
    .replace(/[:/].*$/, '')
    .toLowerCase();
  return /^[a-z0-9.-]+$/.test(d) ? d : undefined;
}

export function digestEnv(values: Map<string, string>, hostKeys: readonly string[]): EnvDigest {
  const hashes = new Map<string, string>();
  for (const [k, v] of values) hashes.set(k, sha256(v));
  const hosts = new Map<string, string>();
  for (const k of hostKeys) {
    const v = values.get(k);
    const h = v === undefined ? undefined : hostOf(v);
    if (h) hosts.set(k, sha256(h));
  }
  const vault = values.get('VAULT_HOST_PATH');
  return {
    hashes,
    hosts,
    vaultPath: vault && vault.startsWith('/') ? vault.replace(/\/+$/, '') || '/' : undefined,
    profiles: (values.get('COMPOSE_PROFILES') ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean),
  };
}

/**
 * Replaces every env value of at least `min` characters found in `text` with ***: for text that
 * came back from the host (a compose error) and might quote one.
 */
export function scrub(text: string, values: Iterable<string>, min = 6): string {
  const list = [...new Set([...values].map((v) => v.trim()).filter((v) => v.length >= min))].sort((a, b) => b.length - a.length);
  let out = text;
  for (const v of list) out = out.split(v).join('***');
  return out;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * One service's environment in a merged compose configuration, as its containers get it: v2 prints
 * the values of its env files there too, v1 only what the compose files set. Values are secrets to
 * the caller (a database URL holds a password). The mapping and the `KEY=value` list form are read.
 */
export function serviceEnvironment(text: string, service: string): Map<string, string> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new Error(`the merged compose configuration is not YAML: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
  const s = isRecord(doc) && isRecord(doc.services) ? doc.services[service] : undefined;
  const env = isRecord(s) ? s.environment : undefined;
  const out = new Map<string, string>();
  if (isRecord(env)) for (const [k, v] of Object.entries(env)) if (v !== null && v !== undefined) out.set(k, scalarText(v));
  if (Array.isArray(env))
    for (const entry of env.map(String)) {
      const eq = entry.indexOf('=');
      if (eq > 0) out.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
  return out;
}
