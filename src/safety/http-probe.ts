/**
 * Preflight's optional HTTP checks, made from the host with curl: prod's robots.txt must not shut
 * search engines out and prod's pages must not carry noindex; dev's pages must carry noindex and
 * refuse visitors without credentials. Parsing and judging are pure; the action runs curl.
 */
import type { EnvironmentName } from '../domain/config';
import type { Finding } from './findings';

export interface HttpResponse {
  status: number;
  /** Lower-cased header names; repeated headers joined with ", ". */
  headers: Map<string, string>;
  body: string;
}

/**
 * Splits `curl -i` output (with -L there is one header block per hop; `100 Continue` adds one)
 * into the final response's status, headers and body.
 */
export function parseCurlResponse(text: string): HttpResponse | undefined {
  let rest = text;
  let last: HttpResponse | undefined;
  while (/^HTTP\/[\d.]+ \d{3}/.test(rest)) {
    const end = rest.search(/\r?\n\r?\n/);
    const block = end < 0 ? rest : rest.slice(0, end);
    const sep = end < 0 ? '' : (/\r?\n\r?\n/.exec(rest.slice(end)) as RegExpExecArray)[0];
    rest = end < 0 ? '' : rest.slice(end + sep.length);
    const [statusLine, ...lines] = block.split(/\r?\n/);
    const headers = new Map<string, string>();
    for (const l of lines) {
      const i = l.indexOf(':');
      if (i <= 0) continue;
      const k = l.slice(0, i).trim().toLowerCase();
      const v = l.slice(i + 1).trim();
      headers.set(k, headers.has(k) ? `${headers.get(k)}, ${v}` : v);
    }
    last = { status: Number(statusLine.split(' ')[1]), headers, body: '' };
  }
  if (last) last.body = rest;
  return last;
}

/** Whether robots.txt tells every crawler (`User-agent: *`) to stay off the whole site. */
export function disallowsEverything(robots: string): boolean {
  const groups: Array<{ agents: string[]; rules: Array<[string, string]> }> = [];
  let current: { agents: string[]; rules: Array<[string, string]> } | undefined;
  for (const raw of robots.split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, '').trim();
    const m = /^([A-Za-z-]+)\s*:\s*(.*)$/.exec(line);
    if (!m) continue;
    const field = m[1].toLowerCase();
    const value = m[2].trim();
    if (field === 'user-agent') {
      if (!current || current.rules.length > 0) {
        current = { agents: [], rules: [] };
        groups.push(current);
      }
      current.agents.push(value.toLowerCase());
    } else if ((field === 'disallow' || field === 'allow') && current) {
      current.rules.push([field, value]);
    }
  }
  const star = groups.filter((g) => g.agents.includes('*'));
  return star.some((g) => g.rules.some(([f, v]) => f === 'disallow' && v === '/') && !g.rules.some(([f, v]) => f === 'allow' && v !== ''));
}

/** noindex in the X-Robots-Tag header or in a robots meta tag of the page. */
export function noindexOf(r: HttpResponse): { header: boolean; meta: boolean } {
  const header = /noindex/i.test(r.headers.get('x-robots-tag') ?? '');
  const meta =
    /<meta[^>]+name\s*=\s*["']?(robots|googlebot)["']?[^>]*content\s*=\s*["'][^"']*noindex/i.test(r.body) ||
    /<meta[^>]+content\s*=\s*["'][^"']*noindex[^"']*["'][^>]*name\s*=\s*["']?robots/i.test(r.body);
  return { header, meta };
}

export interface Probe {
  environment: EnvironmentName;
  url: string;
  kind: 'robots' | 'page';
  /** The response, or what went wrong making the request. */
  response?: HttpResponse;
  error?: string;
}

export function judgeProbe(p: Probe): Finding[] {
  const out: Finding[] = [];
  const f = (severity: Finding['severity'], message: string, fix: string) => out.push({ check: 'http', environment: p.environment, severity, message, fix });
  if (!p.response) {
    f('warning', `${p.url} could not be checked: ${p.error ?? 'no answer'}`, `make ${p.url} reachable from the host, or set preflight.http.enabled: false`);
    return out;
  }
  const r = p.response;
  if (p.environment === 'prod') {
    if (p.kind === 'robots') {
      if (r.status === 200 && disallowsEverything(r.body))
        f(
          'error',
          `${p.url} tells every crawler "Disallow: /": prod vanishes from search engines`,
          "serve prod's own robots.txt (the disallow-all one belongs to dev)",
        );
      return out;
    }
    const n = noindexOf(r);
    if (n.header) f('error', `${p.url} answers with X-Robots-Tag: noindex`, 'remove the X-Robots-Tag header from prod (it belongs to dev only)');
    if (n.meta) f('error', `${p.url} carries a robots noindex meta tag`, "remove the noindex meta tag from prod's pages");
    if (r.status === 401)
      f('error', `${p.url} asks for credentials (401): the public cannot open prod`, 'remove basic auth from prod (it belongs to dev only)');
    else if (r.status >= 400) f('warning', `${p.url} answered ${r.status}, so its headers say little`, `check that ${p.url} is a page prod serves`);
    return out;
  }
  if (r.status !== 401)
    f('error', `${p.url} answered ${r.status} without credentials: dev is open to anyone`, "put basic auth in front of dev's pages (caddy.basicauth labels)");
  const n = noindexOf(r);
  if (!n.header && !n.meta) {
    // A 401 page is not indexed anyway; an open page without noindex is.
    f(
      r.status === 401 ? 'warning' : 'error',
      `${p.url} carries no X-Robots-Tag: noindex`,
      'add the header X-Robots-Tag: "noindex, nofollow" to dev (caddy.header.X-Robots-Tag label)',
    );
  }
  return out;
}
