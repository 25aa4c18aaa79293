/**
 * The isolation invariants between prod and dev on one host, as pure functions over what preflight
 * read: the two env files (as digests: hashes only), the two merged compose configurations, and the
 * host's size. Each check returns findings that name the key, service, port or path and say what
 * to change; none contains an env file value.
 *
 * Known limit: a service with `network_mode: host` publishes no ports in the compose file; it
 * listens wherever its program is told to, which compose cannot show. For such stacks only env file
 * keys ending in _PORT are compared (a warning when equal), and the summary says so.
 */
import type { EnvironmentConfig, EnvironmentName } from '../domain/config';
import { caddyDomains, hasBasicAuthLabel, hasNoindexLabel, type ComposeModel, type ServiceModel } from './compose-model';
import type { PreflightCheck, PreflightSettings } from './config';
import { sha256, type EnvDigest } from './env-file';
import type { Finding, Severity } from './findings';
import { formatBytes, formatCpus } from './units';

export interface EnvironmentFacts {
  name: EnvironmentName;
  config: EnvironmentConfig;
  /** Undefined when the env file could not be read (reported already). */
  env?: EnvDigest;
  /** Undefined when `config` failed (reported already). */
  compose?: ComposeModel;
}

export interface HostTotals {
  cpus: number;
  memoryBytes: number;
}

export interface IsolationInput {
  prod: EnvironmentFacts;
  dev: EnvironmentFacts;
  settings: PreflightSettings;
  host?: HostTotals;
  /** twinstack's own directories on the host: nothing in dev may mount them. */
  paths?: { stateDir: string; backupDir: string };
}

export interface IsolationResult {
  findings: Finding[];
  /** What could not be checked, and why (shown under the table). */
  notes: string[];
}

const EMPTY = sha256('');

class Collector {
  readonly findings: Finding[] = [];
  readonly notes: string[] = [];
  constructor(private readonly warnOnly: readonly string[]) {}

  add(check: PreflightCheck, environment: Finding['environment'], severity: Severity, message: string, fix: string): void {
    const downgraded = severity === 'error' && this.warnOnly.includes(check);
    this.findings.push({ check, environment, severity: downgraded ? 'warning' : severity, message: downgraded ? `${message} (warn-only)` : message, fix });
  }
  error(check: PreflightCheck, environment: Finding['environment'], message: string, fix: string): void {
    this.add(check, environment, 'error', message, fix);
  }
  warning(check: PreflightCheck, environment: Finding['environment'], message: string, fix: string): void {
    this.add(check, environment, 'warning', message, fix);
  }
}

export function checkIsolation(input: IsolationInput): IsolationResult {
  const c = new Collector(input.settings['warn-only']);
  const { prod, dev } = input;
  if (prod.env && dev.env) {
    checkMustDiffer(c, prod, dev, input.settings);
    checkPortVariables(c, input);
  }
  checkEnvironmentFlag(c, prod, dev, input.settings);
  checkRedirects(c, input);
  if (prod.compose && dev.compose) {
    checkContainerNames(c, prod.compose, dev.compose);
    checkVolumeNames(c, prod.compose, dev.compose);
    checkHostPorts(c, prod.compose, dev.compose);
    checkDomains(c, prod.compose, dev.compose);
  }
  if (dev.compose) checkDevLimits(c, dev, input);
  if (dev.compose) checkDevEscape(c, dev.compose, prod.compose);
  if (dev.compose) checkDevMounts(c, dev.compose, prod, input.paths);
  if (prod.compose && dev.compose) {
    checkSharedImages(c, prod.compose, dev.compose);
    checkDevNetworks(c, prod.compose, dev.compose);
  }
  checkVaultMounts(c, prod, dev);
  for (const e of [prod, dev]) if (e.compose) checkSiteLabels(c, e, input.settings);
  return { findings: c.findings, notes: c.notes };
}

function envFile(e: EnvironmentFacts): string {
  return e.config.envFile;
}

const isSet = (d: EnvDigest, key: string) => {
  const h = d.hashes.get(key);
  return h !== undefined && h !== EMPTY;
};

function checkMustDiffer(c: Collector, prod: EnvironmentFacts, dev: EnvironmentFacts, s: PreflightSettings): void {
  const p = prod.env as EnvDigest;
  const d = dev.env as EnvDigest;
  for (const item of s['must-differ']) {
    const keys = Array.isArray(item) ? item : [item];
    const inBoth = keys.filter((k) => isSet(p, k) && isSet(d, k));
    const onlyOne = keys.filter((k) => isSet(p, k) !== isSet(d, k));
    if (inBoth.some((k) => p.hashes.get(k) !== d.hashes.get(k))) continue;
    if (inBoth.length > 0) {
      if (keys.length === 1) {
        c.error('must-differ', 'both', `${keys[0]} has the same value in prod's and dev's env files`, `give dev its own ${keys[0]} in ${envFile(dev)}`);
      } else {
        c.error(
          'must-differ',
          'both',
          `${listWords(inBoth)} ${inBoth.length > 1 ? 'are' : 'is'} the same in prod's and dev's env files, so both point at one ${keys[0].startsWith('DB_') ? 'database' : 'target'} (one of ${keys.join(', ')} must differ)`,
          `change ${inBoth.length > 1 ? 'one of them' : inBoth[0]} in ${envFile(dev)}`,
        );
      }
      continue;
    }
    for (const k of onlyOne) {
      const has = isSet(p, k) ? 'prod' : 'dev';
      const lacks = has === 'prod' ? dev : prod;
      c.warning(
        'must-differ',
        lacks.name,
        `${k} is set in ${has}'s env file but not in ${lacks.name}'s, so it cannot be shown to differ`,
        `set ${k} in ${envFile(lacks)} (or remove it from preflight.must-differ)`,
      );
    }
  }
}

function checkEnvironmentFlag(c: Collector, prod: EnvironmentFacts, dev: EnvironmentFacts, s: PreflightSettings): void {
  const key = s['environment-key'];
  const want = sha256(s['dev-environment']);
  if (dev.env && dev.env.hashes.get(key) !== want) {
    c.error('environment-flag', 'dev', `dev's env file does not set ${key}=${s['dev-environment']}`, `add ${key}=${s['dev-environment']} to ${envFile(dev)}`);
  }
  if (prod.env && prod.env.hashes.get(key) === want) {
    c.error('environment-flag', 'prod', `prod's env file sets ${key}=${s['dev-environment']}`, `set ${key} to prod's own value in ${envFile(prod)}`);
  }
}

function urlHost(e: EnvironmentFacts): string | undefined {
  try {
    return new URL(e.config.url).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

/** Hashes of the host names an environment answers to, from its config url and its caddy labels. */
function publicDomains(e: EnvironmentFacts): Set<string> {
  const out = new Set<string>();
  const u = urlHost(e);
  if (u) out.add(sha256(u));
  for (const svc of e.compose?.services ?? []) for (const d of caddyDomains(svc.labels)) out.add(sha256(d));
  return out;
}

function checkRedirects(c: Collector, input: IsolationInput): void {
  const s = input.settings;
  for (const [self, other] of [
    [input.prod, input.dev],
    [input.dev, input.prod],
  ] as const) {
    if (!self.env) continue;
    const mine = publicDomains(self);
    const theirs = publicDomains(other);
    const own = new Set(mine);
    for (const k of s['domain-keys']) {
      const h = self.env.hosts.get(k);
      if (h) own.add(h);
    }
    for (const key of s['redirect-uri-keys']) {
      if (!isSet(self.env, key)) continue;
      const host = self.env.hosts.get(key);
      const expected = urlHost(self) ?? 'its own domain';
      if (!host) {
        c.error(
          'oauth-redirect',
          self.name,
          `${key} in ${self.name}'s env file is not a URL with a host name`,
          `set ${key} to https://${expected}/<callback path>`,
        );
      } else if (theirs.has(host) && !mine.has(host)) {
        c.error(
          'oauth-redirect',
          self.name,
          `${self.name}'s ${key} sends users back to ${other.name}'s domain`,
          `point ${key} in ${envFile(self)} at ${expected}, and register that callback in ${self.name}'s own OAuth app`,
        );
      } else if (!own.has(host)) {
        c.error(
          'oauth-redirect',
          self.name,
          `${self.name}'s ${key} points at a host that is not ${self.name}'s domain (expected ${expected}, from environments.${self.name}.url)`,
          `point ${key} in ${envFile(self)} at ${expected}`,
        );
      }
    }
  }
}

function checkPortVariables(c: Collector, input: IsolationInput): void {
  const hostNet = [input.prod, input.dev].flatMap((e) => (e.compose?.services ?? []).filter((s) => s.networkMode === 'host').map((s) => `${e.name} ${s.name}`));
  if (hostNet.length === 0) return;
  c.notes.push(
    `${listWords(hostNet)} use${hostNet.length === 1 ? 's' : ''} network_mode: host: the ports such services listen on are not in the compose configuration, so only env file keys ending in _PORT are compared.`,
  );
  const p = input.prod.env as EnvDigest;
  const d = input.dev.env as EnvDigest;
  const listed = new Set(input.settings['must-differ'].flat());
  for (const key of [...p.hashes.keys()].filter((k) => /(^|_)PORT$/.test(k) && !listed.has(k)).sort()) {
    if (isSet(p, key) && isSet(d, key) && p.hashes.get(key) === d.hashes.get(key)) {
      c.warning(
        'port-variables',
        'both',
        `${key} is the same in prod's and dev's env files while services share the host's network: both would listen on one port`,
        `give dev its own ${key} in ${envFile(input.dev)}`,
      );
    }
  }
}

function index<T>(compose: ComposeModel, pick: (s: ServiceModel) => T[]): Map<T, string[]> {
  const out = new Map<T, string[]>();
  for (const s of compose.services) for (const v of pick(s)) out.set(v, [...(out.get(v) ?? []), s.name]);
  return out;
}

function checkContainerNames(c: Collector, prod: ComposeModel, dev: ComposeModel): void {
  const p = index(prod, (s) => (s.containerName ? [s.containerName] : []));
  const d = index(dev, (s) => (s.containerName ? [s.containerName] : []));
  for (const [name, devServices] of d) {
    const prodServices = p.get(name);
    if (!prodServices) continue;
    c.error(
      'container-names',
      'both',
      `container name ${name} is used by prod's ${listWords(prodServices)} and dev's ${listWords(devServices)}: the second project to start replaces or fails on the first's container`,
      `give ${listWords(devServices)} its own container_name in dev's overlay (e.g. ${dev.project}-${devServices[0]}), or drop container_name`,
    );
  }
}

function volumeName(compose: ComposeModel, key: string): string {
  return compose.volumeNames.get(key) ?? `${compose.project}_${key}`;
}

function checkVolumeNames(c: Collector, prod: ComposeModel, dev: ComposeModel): void {
  const pick = (compose: ComposeModel) => (s: ServiceModel) => s.mounts.filter((m) => m.type === 'volume').map((m) => volumeName(compose, m.source));
  const p = index(prod, pick(prod));
  const d = index(dev, pick(dev));
  for (const [name, devServices] of d) {
    const prodServices = p.get(name);
    if (!prodServices) continue;
    c.error(
      'volume-names',
      'both',
      `volume ${name} is mounted by prod's ${listWords(prodServices)} and dev's ${listWords(devServices)}: dev would read and write prod's data`,
      `give the volume its own name in dev's overlay (volumes: <key>: name: ${dev.project}_...)`,
    );
  }
}

const ANY = new Set(['', '0.0.0.0', '::', '*']);

function checkHostPorts(c: Collector, prod: ComposeModel, dev: ComposeModel): void {
  for (const ps of prod.services) {
    for (const pp of ps.ports) {
      for (const ds of dev.services) {
        for (const dp of ds.ports) {
          if (dp.port !== pp.port || dp.protocol !== pp.protocol) continue;
          if (!(ANY.has(dp.hostIp) || ANY.has(pp.hostIp) || dp.hostIp === pp.hostIp)) continue;
          c.error(
            'host-ports',
            'both',
            `host port ${pp.port}/${pp.protocol} is published by prod's ${ps.name} and dev's ${ds.name}: only one of them can start`,
            `publish a different host port for ${ds.name} in dev's overlay (e.g. "${pp.port + 1}:<container port>")`,
          );
        }
      }
    }
  }
}

function checkDomains(c: Collector, prod: ComposeModel, dev: ComposeModel): void {
  const p = index(prod, (s) => caddyDomains(s.labels));
  const d = index(dev, (s) => caddyDomains(s.labels));
  for (const [domain, devServices] of d) {
    const prodServices = p.get(domain);
    if (!prodServices) continue;
    c.error(
      'domains',
      'both',
      `${domain} is claimed by the caddy labels of prod's ${listWords(prodServices)} and dev's ${listWords(devServices)}: the proxy would send prod's visitors to dev`,
      `label dev's ${listWords(devServices)} with dev's own domain in dev's overlay`,
    );
  }
}

function checkDevLimits(c: Collector, dev: EnvironmentFacts, input: IsolationInput): void {
  const s = input.settings;
  const services = (dev.compose as ComposeModel).services;
  for (const svc of services) {
    const missing = [svc.cpus === undefined ? 'CPU' : '', svc.memoryBytes === undefined ? 'memory' : ''].filter(Boolean);
    if (missing.length) {
      c.error(
        'dev-limits',
        'dev',
        `dev service ${svc.name} has no ${missing.join(' and no ')} limit: it can take the host from prod`,
        `set deploy.resources.limits ${missing.map((m) => (m === 'CPU' ? 'cpus' : 'memory')).join(' and ')} for ${svc.name} in dev's overlay`,
      );
    }
  }
  const cpus = services.reduce((a, x) => a + (x.cpus ?? 0), 0);
  const memory = services.reduce((a, x) => a + (x.memoryBytes ?? 0), 0);
  const host = input.host;
  const budgets: Array<{ cpus: number; memory: number; what: string; key: string }> = [
    { cpus: s['dev-cpus'], memory: s['dev-memory'], what: 'its share', key: 'preflight.dev-cpus / dev-memory' },
  ];
  if (host && s['dev-host-share'] !== undefined) {
    const f = s['dev-host-share'] / 100;
    budgets.push({ cpus: host.cpus * f, memory: host.memoryBytes * f, what: `${s['dev-host-share']} % of the host`, key: 'preflight.dev-host-share' });
  }
  if (host) budgets.push({ cpus: host.cpus, memory: host.memoryBytes, what: 'the whole host', key: 'the size of the host' });
  for (const b of budgets) {
    if (cpus > b.cpus + 1e-9) {
      c.error(
        'dev-share',
        'dev',
        `dev's CPU limits add up to ${formatCpus(cpus)}, more than ${b.what} (${formatCpus(b.cpus)})`,
        `lower the cpus limits in dev's overlay, or raise ${b.key}`,
      );
      break;
    }
  }
  for (const b of budgets) {
    if (memory > b.memory) {
      c.error(
        'dev-share',
        'dev',
        `dev's memory limits add up to ${formatBytes(memory)}, more than ${b.what} (${formatBytes(b.memory)})`,
        `lower the memory limits in dev's overlay, or raise ${b.key}`,
      );
      break;
    }
  }
}

function vaultOf(e: EnvironmentFacts): { path: string; source: string } | undefined {
  if (e.config.vault) return { path: e.config.vault, source: `environments.${e.name}.vault` };
  if (e.env?.vaultPath) return { path: e.env.vaultPath, source: `VAULT_HOST_PATH in ${e.name}'s env file` };
  return undefined;
}

const within = (path: string, dir: string) => dir === '/' || path === dir || path.startsWith(`${dir}/`);
const reaches = (source: string, vault: string) => within(source, vault) || within(vault, source);

function checkVaultMounts(c: Collector, prod: EnvironmentFacts, dev: EnvironmentFacts): void {
  const pv = vaultOf(prod);
  const dv = vaultOf(dev);
  if (!pv || !dv) {
    c.notes.push(
      `vault mounts not checked: ${!pv ? "prod's" : "dev's"} vault path is unknown (set environments.<env>.vault, or VAULT_HOST_PATH in the env file).`,
    );
    return;
  }
  for (const [self, own, other, theirs] of [
    [prod, pv, dev, dv],
    [dev, dv, prod, pv],
  ] as const) {
    for (const svc of self.compose?.services ?? []) {
      const binds = svc.mounts.filter((m) => m.type === 'bind');
      const readsOwn = binds.some((m) => reaches(m.source, own.path));
      for (const m of binds.filter((b) => reaches(b.source, theirs.path))) {
        // A proxy that serves both vaults may read both; nothing in one environment may write the other's.
        if (m.readOnly && readsOwn && binds.filter((b) => reaches(b.source, own.path)).every((b) => b.readOnly)) continue;
        c.error(
          'vault-mounts',
          self.name,
          `${self.name} service ${svc.name} mounts ${other.name}'s vault (${theirs.source}) at ${m.target}${m.readOnly ? ' read-only' : ' read-write'}`,
          m.readOnly
            ? `mount ${self.name}'s own vault in ${svc.name}; only a service shared by both environments may read both vaults, read-only`
            : `mount ${self.name}'s own vault in ${svc.name} (check ${theirs.source.includes('VAULT_HOST_PATH') ? `VAULT_HOST_PATH in ${envFile(self)}` : `the volumes of ${svc.name}`})`,
        );
      }
    }
  }
}

function siteServices(e: EnvironmentFacts, s: PreflightSettings): { site: ServiceModel[]; others: ServiceModel[] } {
  const withDomains = (e.compose as ComposeModel).services.filter((svc) => caddyDomains(svc.labels).length > 0);
  let site: ServiceModel[];
  if (s['site-services']) site = withDomains.filter((svc) => s['site-services']?.includes(svc.name));
  else {
    const host = urlHost(e);
    site = withDomains.filter((svc) => host !== undefined && caddyDomains(svc.labels).includes(host));
    if (site.length === 0) site = withDomains;
  }
  return { site, others: withDomains.filter((svc) => !site.includes(svc)) };
}

function checkSiteLabels(c: Collector, e: EnvironmentFacts, s: PreflightSettings): void {
  const { site, others } = siteServices(e, s);
  if (site.length === 0) {
    c.notes.push(
      `${e.name} has no caddy site labels: the noindex and basic auth labels were not checked${s.http.enabled ? '' : ' (preflight.http.enabled checks the live site instead)'}.`,
    );
    return;
  }
  for (const svc of site) {
    const domains = caddyDomains(svc.labels).join(', ');
    const noindex = hasNoindexLabel(svc.labels);
    const auth = hasBasicAuthLabel(svc.labels);
    if (e.name === 'dev') {
      if (!noindex)
        c.error(
          'noindex',
          'dev',
          `dev's site service ${svc.name} (${domains}) sends no X-Robots-Tag: noindex header, so search engines may index dev`,
          `add the label caddy.header.X-Robots-Tag: "noindex, nofollow" to ${svc.name} in dev's overlay`,
        );
      if (!auth)
        c.error(
          'basic-auth',
          'dev',
          `dev's site service ${svc.name} (${domains}) has no basic auth: anyone can open dev`,
          `add caddy.basicauth labels (a user and a bcrypt hash) to ${svc.name} in dev's overlay`,
        );
    } else {
      if (noindex)
        c.error(
          'noindex',
          'prod',
          `prod's site service ${svc.name} (${domains}) sends X-Robots-Tag: noindex: search engines will drop the site`,
          `remove the X-Robots-Tag label from ${svc.name} (it belongs in dev's overlay only)`,
        );
      if (auth)
        c.error(
          'basic-auth',
          'prod',
          `prod's site service ${svc.name} (${domains}) asks for basic auth: the public cannot open the site`,
          `remove the basicauth labels from ${svc.name} (they belong in dev's overlay only)`,
        );
    }
  }
  for (const svc of others) {
    const domains = caddyDomains(svc.labels).join(', ');
    if (e.name === 'dev' && !hasNoindexLabel(svc.labels)) {
      c.warning(
        'noindex',
        'dev',
        `dev service ${svc.name} (${domains}) sends no X-Robots-Tag: noindex header`,
        `add caddy.header.X-Robots-Tag: "noindex, nofollow" to ${svc.name} in dev's overlay`,
      );
    }
    if (e.name === 'prod' && hasNoindexLabel(svc.labels)) {
      c.warning(
        'noindex',
        'prod',
        `prod service ${svc.name} (${domains}) sends X-Robots-Tag: noindex (right for a private subdomain, wrong for a public one)`,
        `remove the label if ${domains} should be found by search engines`,
      );
    }
  }
}

function listWords(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/** CPUs and memory from `nproc; cat /proc/meminfo`. */
export function parseHostTotals(text: string): HostTotals | undefined {
  const cpus = Number(/^\s*(\d+)\s*$/m.exec(text)?.[1]);
  const kb = Number(/^MemTotal:\s+(\d+)\s+kB/m.exec(text)?.[1]);
  if (!(cpus > 0) || !(kb > 0)) return undefined;
  return { cpus, memoryBytes: kb * 1024 };
}

/**
 * Whatever lets a dev container act on the host, and so on prod: privileged mode, the host's
 * process, IPC or user namespaces, added capabilities, devices, the Docker socket, the host's root,
 * or another container's network namespace that belongs to prod.
 */
function checkDevEscape(c: Collector, dev: ComposeModel, prod: ComposeModel | undefined): void {
  const prodContainers = new Set((prod?.services ?? []).flatMap((s) => [s.name, s.containerName].filter((x): x is string => !!x)));
  for (const s of dev.services) {
    const why: string[] = [];
    if (s.privileged) why.push('runs privileged');
    if (s.pid === 'host') why.push('uses the host PID namespace (pid: host)');
    if (s.ipc === 'host') why.push('uses the host IPC namespace (ipc: host)');
    if (s.usernsMode === 'host') why.push('turns off user namespace remapping (userns_mode: host)');
    if (s.capAdd.length) why.push(`adds capabilities ${s.capAdd.join(', ')}`);
    if (s.devices.length) why.push(`maps devices ${s.devices.join(', ')}`);
    if (s.securityOpt.some((o) => /unconfined|no-new-privileges[:=]false/i.test(o))) why.push(`loosens its security profile (${s.securityOpt.join(', ')})`);
    for (const m of s.mounts.filter((x) => x.type === 'bind')) {
      if (/(^|\/)docker\.sock$/.test(m.source) || m.source === '/var/run' || m.source === '/run') why.push(`mounts the Docker socket (${m.source})`);
      else if (m.source === '/') why.push("mounts the host's root directory");
    }
    const mode = s.networkMode ?? '';
    const shared = /^(container|service):(.+)$/.exec(mode);
    if (shared && prod && (prodContainers.has(shared[2]) || !dev.services.some((d) => d.name === shared[2] || d.containerName === shared[2]))) {
      why.push(`shares the network namespace of ${shared[2]} (network_mode: ${mode}), which is not a dev container`);
    }
    for (const w of why) {
      c.error(
        'dev-escape',
        'dev',
        `dev service ${s.name} ${w}: anything running on dev (any branch) could then reach prod`,
        `remove it from ${s.name} in dev's overlay`,
      );
    }
  }
}

/** Dev may not mount prod's checkout, twinstack's state or backups, in any mode. */
function checkDevMounts(c: Collector, dev: ComposeModel, prod: EnvironmentFacts, paths: IsolationInput['paths']): void {
  const guarded: Array<[string, string]> = [[prod.config.checkout, "prod's checkout"]];
  if (paths)
    guarded.push([paths.stateDir, "twinstack's state directory (locks, host logs)"], [paths.backupDir, "the backup directory (prod's database dumps)"]);
  for (const s of dev.services) {
    for (const m of s.mounts.filter((x) => x.type === 'bind')) {
      for (const [dir, what] of guarded) {
        if (m.source !== '/' && reaches(m.source, dir)) {
          c.error(
            'dev-mounts',
            'dev',
            `dev service ${s.name} mounts ${m.source} at ${m.target}${m.readOnly ? ' read-only' : ''}, which reaches ${what}`,
            `mount only dev's own checkout and data in ${s.name}`,
          );
        }
      }
    }
  }
}

/** The same image name in both: a rollback's retag or a build of one would change what the other runs. */
function checkSharedImages(c: Collector, prod: ComposeModel, dev: ComposeModel): void {
  const prodImages = new Map(prod.services.filter((s) => s.image).map((s) => [s.image as string, s.name]));
  for (const s of dev.services) {
    const other = s.image ? prodImages.get(s.image) : undefined;
    // A pulled image both use read-only is harmless; one either of them builds is not.
    if (other && (s.image as string) && (builds(dev, s.name) || builds(prod, other))) {
      c.error(
        'shared-images',
        'dev',
        `dev service ${s.name} builds or runs image ${s.image}, which prod's ${other} also uses: a build or retag in one changes the other`,
        `give dev's ${s.name} its own image name (e.g. ${s.image?.replace(/(:[^/:]+)?$/, '-dev$1')}) in dev's overlay`,
      );
    }
  }
}

function builds(model: ComposeModel, service: string): boolean {
  return model.services.find((s) => s.name === service)?.builds ?? false;
}

/** Dev may join networks shared on purpose (external, like caddy_net), never prod's own. */
function checkDevNetworks(c: Collector, prod: ComposeModel, dev: ComposeModel): void {
  const prodOwn = new Map([...prod.networks.values()].filter((n) => !n.external).map((n) => [n.name, n]));
  for (const s of dev.services) {
    for (const key of s.networks) {
      const n = dev.networks.get(key);
      if (n && prodOwn.has(n.name)) {
        c.error(
          'dev-networks',
          'dev',
          `dev service ${s.name} joins network ${n.name}, which is prod's own (not an external network both share on purpose)`,
          `give dev its own network, or declare a shared network external in both overlays`,
        );
      }
    }
  }
}
