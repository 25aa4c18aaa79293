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
import { posix } from 'node:path';
import type { EnvironmentConfig, EnvironmentName } from '../domain/config';
import { caddyDomains, hasBasicAuthLabel, hasNoindexLabel, type ComposeModel, type ServiceModel } from './compose-model';
import type { PreflightCheck, PreflightSettings } from '../config/checks';
import { sha256, type EnvDigest } from '../domain/env-file';
import type { Finding } from './findings';
import { formatBytes, formatCpus } from '../infra/units';

export interface EnvironmentFacts {
  name: EnvironmentName;
  config: EnvironmentConfig;
  /** Undefined when the env file could not be read (reported already). */
  env?: EnvDigest;
  /** Undefined when `config` failed (reported already). */
  compose?: ComposeModel;
  /** docker-compose v1 prints no env_file lists at all: they could not be checked. */
  envFilesUnread?: boolean;
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
  /**
   * Each path of pathsToResolve() as `realpath -m` gave it on the host (symlinks followed). Without
   * it (no host at hand) paths are only normalized, so a symlink is not seen through.
   */
  realPaths?: ReadonlyMap<string, string>;
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

  add({ check, environment, severity, message, fix }: Finding & { check: PreflightCheck }): void {
    const downgraded = severity === 'error' && this.warnOnly.includes(check);
    this.findings.push({ check, environment, severity: downgraded ? 'warning' : severity, message: downgraded ? `${message} (warn-only)` : message, fix });
  }
  error(check: PreflightCheck, environment: Finding['environment'], message: string, fix: string): void {
    this.add({ check, environment, severity: 'error', message, fix });
  }
  warning(check: PreflightCheck, environment: Finding['environment'], message: string, fix: string): void {
    this.add({ check, environment, severity: 'warning', message, fix });
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
  if (dev.compose) checkDevEscape(c, dev.compose, prod.compose, input);
  if (dev.compose) checkDevPaths(c, dev.compose, input);
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
 * Whatever lets a dev container act on the host, and so on prod: privileged mode, added
 * capabilities, a loosened security profile, the Docker socket or the host's root; a namespace
 * (network, PID, IPC, cgroup, UTS, user) of the host or of any container that is not dev's own;
 * another container's volumes; devices, device cgroup rules and GPUs not listed in preflight.dev-devices.
 */
function checkDevEscape(c: Collector, dev: ComposeModel, prod: ComposeModel | undefined, input: IsolationInput): void {
  const { own, whose } = devOwnership(dev, prod);
  const real = resolver(input);
  const allowed = input.settings['dev-devices'];
  const deviceRoots = allowed.filter((d) => d.startsWith('/')).map((d) => real(d) ?? d);
  for (const svc of dev.services) {
    const e: EscapeCheck = {
      svc,
      settings: input.settings,
      own,
      whose,
      real,
      allowed,
      deviceRoots,
      fail: (message, fix) => c.error('dev-escape', 'dev', `dev service ${svc.name}: ${message}`, fix),
      remove: (key) => `remove ${key} from ${svc.name} in dev's overlay`,
    };
    escapePrivileges(e);
    escapeHostPaths(e);
    escapeNamespaces(e);
    escapeVolumesFrom(e);
    escapeDevices(e);
  }
}

type ComposeService = ComposeModel['services'][number];

/** What each check of one dev service needs: who owns a name, how paths resolve, how to report. */
interface EscapeCheck {
  svc: ComposeService;
  settings: IsolationInput['settings'];
  own: (kind: string, name: string) => boolean;
  whose: (name: string) => string;
  real: ReturnType<typeof resolver>;
  allowed: string[];
  deviceRoots: string[];
  fail: (message: string, fix: string) => void;
  remove: (key: string) => string;
}

/** Which service and container names are dev's own, and how to describe one that is not. */
function devOwnership(dev: ComposeModel, prod: ComposeModel | undefined): Pick<EscapeCheck, 'own' | 'whose'> {
  const prodContainers = new Set((prod?.services ?? []).flatMap((x) => [x.name, x.containerName].filter((n): n is string => !!n)));
  const services = new Set(dev.services.map((x) => x.name));
  const containers = new Set(dev.services.flatMap((x) => (x.containerName ? [x.containerName] : [])));
  // Containers compose names itself: <project>-<service>-<n> (v2) or <project>_<service>_<n> (v1).
  const ownDefault = (name: string) =>
    dev.services.some(
      (x) =>
        !x.containerName && [`${dev.project}-${x.name}-`, `${dev.project}_${x.name}_`].some((p) => name.startsWith(p) && /^\d+$/.test(name.slice(p.length))),
    );
  return {
    own: (kind, name) => (kind === 'service' ? services.has(name) : containers.has(name) || ownDefault(name)),
    whose: (name) => (prodContainers.has(name) ? "prod's" : "not one of dev's running services or containers"),
  };
}

function escapePrivileges({ svc, fail, remove }: EscapeCheck): void {
  if (svc.privileged) fail('privileged: true gives it every capability and every host device', remove('privileged'));
  if (svc.capAdd.length) fail(`cap_add adds capabilities ${svc.capAdd.join(', ')}`, remove('cap_add'));
  if (svc.securityOpt.some((o) => /unconfined|no-new-privileges[:=]false/i.test(o)))
    fail(`security_opt loosens its security profile (${svc.securityOpt.join(', ')})`, remove('the unconfined security_opt entries'));
}

/** The Docker socket and the host's root, by the path written and by the path it resolves to on the host. */
function escapeHostPaths({ svc, real, fail, remove }: EscapeCheck): void {
  svc.hostPaths.forEach((u) => {
    const r = u.url ? undefined : real(u.path);
    for (const p of new Set([u.path, r ?? u.path])) {
      if (isDockerSocket(p)) {
        fail(
          `${u.key} ${u.verb} ${u.path} (resolved ${r ?? u.path}): the Docker socket, which controls every container on the host`,
          remove(`the Docker socket from ${u.key}`),
        );
        break;
      }
      if (p === '/' && u.key.startsWith('volumes[')) {
        fail(`${u.key} ${u.verb} the host's root directory${r && r !== u.path ? ` (through ${u.path})` : ''}`, remove(`the mount of / from ${u.key}`));
        break;
      }
    }
  });
}

/** Namespaces: the host's are refused (network only when the config allows it), a container's only when it is dev's own. */
function escapeNamespaces({ svc, settings, own, whose, fail, remove }: EscapeCheck): void {
  const namespaces: Array<[string, string | undefined, string, readonly string[]]> = [
    ['network_mode', svc.networkMode, 'network', ['bridge', 'none', 'default']],
    ['pid', svc.pid, 'PID', []],
    ['ipc', svc.ipc, 'IPC', ['private', 'shareable', 'none']],
    ['cgroup', svc.cgroup, 'cgroup', ['private']],
    ['uts', svc.uts, 'UTS (host name)', []],
    ['userns_mode', svc.usernsMode, 'user', []],
  ];
  for (const [key, value, ns, plain] of namespaces) {
    if (value === undefined || value === '' || plain.includes(value)) continue;
    const target = /^(service|container):(.+)$/.exec(value);
    if (value === 'host') {
      if (key === 'network_mode' && settings['dev-host-network']) continue;
      fail(
        `${key}: host shares the host's ${ns} namespace with prod`,
        key === 'network_mode'
          ? `remove network_mode: host from ${svc.name}, or set preflight.dev-host-network: true if dev's services must use the host's network`
          : remove(`${key}: host`),
      );
    } else if (target) {
      if (own(target[1], target[2])) continue;
      fail(
        `${key}: ${value} joins the ${ns} namespace of ${target[2]}, which is ${whose(target[2])}`,
        `name one of dev's own services (service:<name>) in ${key}, or remove it`,
      );
    } else {
      fail(
        `${key}: ${value} is not a namespace twinstack can tell is dev's own`,
        `use ${[...plain, 'service:<dev service>'].join(', ')} for ${key}, or remove it`,
      );
    }
  }
}

function escapeVolumesFrom({ svc, own, whose, fail }: EscapeCheck): void {
  svc.volumesFrom.forEach((v, i) => {
    const m = /^(?:(service|container):)?(.+?)(?::(?:ro|rw))?$/.exec(v) as RegExpExecArray;
    const kind = m[1] ?? 'service';
    if (!own(kind, m[2])) {
      fail(
        `volumes_from[${i}] takes every volume of ${m[2]}, which is ${whose(m[2])}`,
        `mount dev's own volumes in ${svc.name} instead of volumes_from ${m[2]}`,
      );
    }
  });
}

/** Devices, device cgroup rules and GPUs: only those preflight.dev-devices lists. */
function escapeDevices({ svc, real, allowed, deviceRoots, fail }: EscapeCheck): void {
  const listFix = (what: string) => `remove ${what} from ${svc.name}, or add it to preflight.dev-devices if dev alone uses it`;
  svc.devices.forEach((d, i) => {
    const r = real(d) ?? d;
    if (!deviceRoots.some((root) => within(r, root)))
      fail(`devices[${i}] maps host device ${d} (resolved ${r}), which preflight.dev-devices does not list`, listFix(d));
  });
  svc.deviceCgroupRules.forEach((rule, i) => {
    if (!allowed.includes(rule.trim().replace(/\s+/g, ' ')))
      fail(`device_cgroup_rules[${i}] allows devices "${rule}", which preflight.dev-devices does not list`, listFix(`"${rule}"`));
  });
  if (svc.gpus && !allowed.includes('gpu'))
    fail("gpus (or deploy.resources.reservations.devices) hands it the host's GPUs, which preflight.dev-devices does not list (gpu)", listFix('gpu'));
}

const isDockerSocket = (p: string) => /(^|\/)docker\.sock$/.test(p) || p === '/var/run' || p === '/run';

/** The real path of each path pathsToResolve() gave, or (no host) the path normalized. */
function resolver(input: IsolationInput): (p: string) => string | undefined {
  const map = input.realPaths;
  return (p) => (map ? map.get(p) : posix.normalize(p).replace(/(.)\/+$/, '$1'));
}

interface Root {
  path: string;
  source: string;
}

/** The host paths that are dev's: its checkout, its vault, and preflight.dev-paths. */
function devRoots(input: IsolationInput): Root[] {
  const cfg = input.dev.config;
  const roots: Root[] = [{ path: cfg.checkout, source: 'environments.dev.checkout' }];
  if (cfg.vault) roots.push({ path: cfg.vault, source: 'environments.dev.vault' });
  input.settings['dev-paths'].forEach((p, i) => roots.push({ path: p, source: `preflight.dev-paths[${i}]` }));
  return roots;
}

/** What dev may never reach, even under a path listed as dev's: prod's checkout and vault, twinstack's state and backups. */
function guarded(input: IsolationInput): Array<{ path: string; what: string }> {
  const out = [{ path: input.prod.config.checkout, what: "prod's checkout" }];
  if (input.prod.config.vault) out.push({ path: input.prod.config.vault, what: "prod's vault" });
  if (input.paths)
    out.push(
      { path: input.paths.stateDir, what: "twinstack's state directory (locks, host logs, scripts run as the operator)" },
      { path: input.paths.backupDir, what: "the backup directory (prod's database dumps)" },
    );
  return out;
}

/** Every path the checks compare, to be resolved on the host in one go. */
export function pathsToResolve(input: IsolationInput): string[] {
  const out = new Set<string>();
  for (const r of devRoots(input)) out.add(r.path);
  for (const g of guarded(input)) out.add(g.path);
  for (const d of input.settings['dev-devices']) if (d.startsWith('/')) out.add(d);
  for (const s of input.dev.compose?.services ?? []) {
    for (const u of s.hostPaths) if (!u.url && u.path.startsWith('/')) out.add(u.path);
    for (const d of s.devices) if (d.startsWith('/')) out.add(d);
  }
  return [...out].sort();
}

/**
 * Deny by default: every host path a dev service touches must lie, symlinks resolved, under one of
 * dev's own paths; and none, wherever it lies, may reach prod's checkout or vault, the state
 * directory or the backups (check dev-mounts, also when a listed dev path holds them).
 */
function checkDevPaths(c: Collector, dev: ComposeModel, input: IsolationInput): void {
  const real = resolver(input);
  const guards = guarded(input).map((g) => ({ ...g, real: real(g.path) ?? g.path }));
  const roots: Array<Root & { real: string }> = [];
  for (const root of devRoots(input)) {
    const r = real(root.path) ?? root.path;
    const hit = guards.find((g) => reaches(r, g.real));
    if (hit) {
      c.error(
        'dev-paths',
        'dev',
        `${root.source} (${root.path}${r !== root.path ? `, resolved ${r}` : ''}) reaches ${hit.what} (${hit.path}), so it cannot count as dev's own`,
        root.source.startsWith('preflight.')
          ? `list only directories that belong to dev alone in preflight.dev-paths`
          : `give dev a ${root.source.split('.').pop()} of its own, apart from prod's`,
      );
    } else roots.push({ ...root, real: r });
  }
  const list = roots.map((r) => r.path).join(', ') || 'none';
  if (input.dev.envFilesUnread)
    c.notes.push("dev's env_file paths were not checked: docker-compose v1 prints no env_file lists (docker compose v2's config --no-interpolate does).");
  for (const svc of dev.services) {
    for (const u of svc.hostPaths) {
      const at = `dev service ${svc.name}: ${u.key}`;
      // The Docker socket and the host's root are refused by dev-escape already, in words that say why.
      const r0 = u.url ? undefined : real(u.path);
      if ([u.path, r0].some((p) => p !== undefined && (isDockerSocket(p) || (p === '/' && u.key.startsWith('volumes['))))) continue;
      if (u.url) {
        if (!input.settings['dev-build-urls'])
          c.error(
            'dev-paths',
            'dev',
            `${at} builds from ${safeUrl(u.path)}, a URL: what it holds cannot be checked before the build`,
            `build ${svc.name} from a directory in dev's checkout, or set preflight.dev-build-urls: true to allow URL contexts`,
          );
        continue;
      }
      if (u.path.includes('$') || !u.path.startsWith('/')) {
        c.error(
          'dev-paths',
          'dev',
          `${at} ${u.verb} ${u.path}, which is not an absolute host path after compose's merge${u.path.includes('$') ? ' (a variable in an env_file path is not interpolated where twinstack reads it)' : ''}`,
          `write the path out in ${svc.name}'s ${u.key.replace(/\[.*$/, '')}, relative to the compose file or absolute`,
        );
        continue;
      }
      const r = real(u.path);
      if (r === undefined) {
        c.error(
          'dev-paths',
          'dev',
          `${at} ${u.verb} ${u.path}, which could not be resolved on the host`,
          `check that ${u.path} is a path the host can resolve`,
        );
        continue;
      }
      const shown = `${at} ${u.verb} ${u.path} (resolved ${r})`;
      const hit = guards.find((g) => reaches(r, g.real));
      if (hit) {
        c.error('dev-mounts', 'dev', `${shown}, which reaches ${hit.what}`, `use only dev's own paths (${list}) in ${svc.name}`);
      } else if (!roots.some((root) => within(r, root.real))) {
        c.error(
          'dev-paths',
          'dev',
          `${shown}, outside dev's own paths (${list})`,
          `use a path under ${list} in ${svc.name}, or add a directory that belongs to dev alone to preflight.dev-paths`,
        );
      }
    }
  }
}

/** A URL without its user, password, query or fragment (a token can ride in any of them). */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return url.replace(/[?#].*$/, '').replace(/\/\/[^/@]*@/, '//');
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
