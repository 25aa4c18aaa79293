/** Sizes and CPU counts as Docker and compose write them. */

/**
 * The text of a scalar read from compose's YAML or Docker's JSON (a string, a number, a boolean);
 * anything else (absent, null, a map, a list) is ''.
 */
export function scalarText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return '';
}

const BINARY: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * Bytes from a compose memory value: a number of bytes (`536870912`, as `docker compose config`
 * prints it) or a size with a unit (`512M`, `1g`, `384mb`, as written and as v1 prints it).
 * Docker's units are binary: 1M is 1024 * 1024 bytes. Undefined for anything else.
 */
export function parseBytes(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([bkmgtp]?)(?:i?b)?\s*$/i.exec(value);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * BINARY[m[2].toLowerCase()]);
}

/** Sizes in `docker stats` output: `12.5MiB`, `1.944GiB`, `0B`, `1.2kB` (decimal units appear too). */
export function parseDockerSize(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKMGTP]?)(i?)B\s*$/.exec(value);
  if (!m) return undefined;
  const base = m[3] ? 1024 : 1000;
  const power = ['', 'K', 'M', 'G', 'T', 'P'].indexOf(m[2].toUpperCase());
  return Math.round(Number(m[1]) * base ** power);
}

/** CPUs from a compose value: `0.5`, `'1.0'`, 2. */
export function parseCpus(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : NaN;
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2).replace(/\.0+$|(\.\d*?)0+$/, '$1')} ${units[i]}`;
}

export function formatCpus(cpus: number): string {
  return `${Number(cpus.toFixed(2))} CPU${cpus === 1 ? '' : 's'}`;
}
