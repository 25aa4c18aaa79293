/**
 * The parts of a merged compose configuration (the YAML that `<compose> ... config` prints) that the
 * isolation checks read. Both printers are understood: docker-compose v1 writes ports and volumes
 * in short string form where it can and sizes as written (`512M`), docker compose v2 writes long
 * form objects and sizes in bytes.
 */
import { posix } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseBytes, parseCpus, scalarText } from '../infra/units';

export interface PublishedPort {
  /** Host address the port is bound to; '' for every address. */
  hostIp: string;
  port: number;
  protocol: string;
}

export interface Mount {
  type: 'bind' | 'volume' | 'other';
  /** Host path for a bind, the compose volume key for a volume. */
  source: string;
  target: string;
  readOnly: boolean;
}

/**
 * A host path a service mounts or reads, with the compose key it came from (as the merged
 * configuration prints it, e.g. `volumes[2]`, `build.context`, `secrets[0] (db_password)`).
 */
export interface HostPathUse {
  key: string;
  /** What the key does with the path, for messages: `binds`, `reads`, `builds from`... */
  verb: string;
  path: string;
  /** A build context that is a URL (git) rather than a host path. */
  url?: boolean;
}

export interface ServiceModel {
  name: string;
  containerName?: string;
  /** A fixed `hostname:`: every container of the service then answers to the same name. */
  hostname?: string;
  ports: PublishedPort[];
  mounts: Mount[];
  labels: Record<string, string>;
  cpus?: number;
  memoryBytes?: number;
  networkMode?: string;
  /** What reaches past the container: privileged, host namespaces, capabilities, devices. */
  privileged: boolean;
  pid?: string;
  ipc?: string;
  usernsMode?: string;
  capAdd: string[];
  /** Host device paths (`devices`, source side). */
  devices: string[];
  deviceCgroupRules: string[];
  /** `gpus`, or device reservations under deploy.resources.reservations.devices. */
  gpus: boolean;
  securityOpt: string[];
  cgroup?: string;
  uts?: string;
  /** `volumes_from` entries as printed (`container:x`, `service:x:rw`, `x`). */
  volumesFrom: string[];
  /** Every host path the service touches: binds, volume devices, env files, secrets, configs, build inputs. */
  hostPaths: HostPathUse[];
  /** The image name the service runs or is tagged with. */
  image?: string;
  /** Whether compose builds that image (a `build` section). */
  builds: boolean;
  /** The networks it joins, by compose key. */
  networks: string[];
  /** `defined`: the compose files give a healthcheck; `disabled`: they switch it off; `image`: whatever the image has. */
  healthcheck: 'defined' | 'disabled' | 'image';
  /** `deploy.placement.constraints` as written (`node.labels.twinstack.env.dev == true`): where a swarm may run its tasks. */
  placement: string[];
  /** `init:` as both printers write it (`init: true`); undefined when the compose files leave it out. */
  init?: boolean;
}

export interface ComposeModel {
  project: string;
  /** Services that `up` would start (inactive profiles left out). */
  services: ServiceModel[];
  /** Services left out because their profiles are not active. */
  inactive: string[];
  /** Volume key -> the name Docker knows it by. */
  volumeNames: Map<string, string>;
  /** Network key -> the name Docker knows it by, and whether it is external (shared on purpose). */
  networks: Map<string, { name: string; external: boolean }>;
}

export class ComposeConfigError extends Error {
  override name = 'ComposeConfigError';
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseComposeConfig(text: string, project: string, activeProfiles: readonly string[] = []): ComposeModel {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ComposeConfigError(`the merged compose configuration is not YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!isObj(doc) || !isObj(doc.services)) throw new ComposeConfigError('the merged compose configuration has no services');
  const top: TopLevel = { volumes: topLevel(doc.volumes), secrets: topLevel(doc.secrets), configs: topLevel(doc.configs) };
  const services: ServiceModel[] = [];
  const inactive: string[] = [];
  for (const [name, raw] of Object.entries(doc.services)) {
    const s = isObj(raw) ? raw : {};
    const profiles = Array.isArray(s.profiles) ? s.profiles.map(String) : [];
    if (profiles.length && !profiles.some((p) => activeProfiles.includes(p) || activeProfiles.includes('*'))) {
      inactive.push(name);
      continue;
    }
    services.push(parseService(name, s, top));
  }
  const volumeNames = new Map<string, string>();
  const volumes = isObj(doc.volumes) ? doc.volumes : {};
  for (const [key, raw] of Object.entries(volumes)) {
    const v = isObj(raw) ? raw : {};
    const external = v.external === true || isObj(v.external);
    const explicit = typeof v.name === 'string' ? v.name : isObj(v.external) && typeof v.external.name === 'string' ? v.external.name : undefined;
    // Unnamed volumes get the project as prefix (compose v1 writes <project>_<key>, and so does v2).
    volumeNames.set(key, explicit ?? (external ? key : `${project.replace(/[^a-z0-9_-]/g, '')}_${key}`));
  }
  const networks = new Map<string, { name: string; external: boolean }>();
  const nets = isObj(doc.networks) ? doc.networks : {};
  for (const [key, raw] of Object.entries(nets)) {
    const v = isObj(raw) ? raw : {};
    const external = v.external === true || isObj(v.external);
    const explicit = typeof v.name === 'string' ? v.name : isObj(v.external) && typeof v.external.name === 'string' ? v.external.name : undefined;
    networks.set(key, { name: explicit ?? (external ? key : `${project.replace(/[^a-z0-9_-]/g, '')}_${key}`), external });
  }
  // A service without networks (and without network_mode) joins the project's default network.
  if (!networks.has('default') && services.some((s) => !s.networkMode && s.networks.length === 0)) {
    networks.set('default', { name: `${project.replace(/[^a-z0-9_-]/g, '')}_default`, external: false });
  }
  for (const s of services) if (!s.networkMode && s.networks.length === 0) s.networks.push('default');
  return { project, services: services.sort((a, b) => a.name.localeCompare(b.name)), inactive, volumeNames, networks };
}

interface TopLevel {
  volumes: Record<string, Obj>;
  secrets: Record<string, Obj>;
  configs: Record<string, Obj>;
}

function topLevel(raw: unknown): Record<string, Obj> {
  const out: Record<string, Obj> = {};
  if (isObj(raw)) for (const [k, v] of Object.entries(raw)) out[k] = isObj(v) ? v : {};
  return out;
}

function parseService(name: string, s: Obj, top: TopLevel): ServiceModel {
  const limits = isObj(s.deploy) && isObj(s.deploy.resources) && isObj(s.deploy.resources.limits) ? s.deploy.resources.limits : {};
  const cpus = minDefined(parseCpus(limits.cpus), parseCpus(s.cpus));
  const memoryBytes = minDefined(parseBytes(limits.memory), parseBytes(s.mem_limit));
  return {
    name,
    containerName: typeof s.container_name === 'string' ? s.container_name : undefined,
    hostname: typeof s.hostname === 'string' && s.hostname ? s.hostname : undefined,
    ports: (Array.isArray(s.ports) ? s.ports : []).flatMap(parsePort),
    mounts: (Array.isArray(s.volumes) ? s.volumes : []).map(parseMount).filter((m): m is Mount => m !== undefined),
    labels: parseLabels(s.labels),
    cpus: cpus && cpus > 0 ? cpus : undefined,
    memoryBytes: memoryBytes && memoryBytes > 0 ? memoryBytes : undefined,
    networkMode: typeof s.network_mode === 'string' ? s.network_mode : undefined,
    privileged: s.privileged === true || s.privileged === 'true',
    pid: typeof s.pid === 'string' ? s.pid : undefined,
    ipc: typeof s.ipc === 'string' ? s.ipc : undefined,
    usernsMode: typeof s.userns_mode === 'string' ? s.userns_mode : undefined,
    capAdd: stringList(s.cap_add),
    // Short form `host[:container[:permissions]]`, long form `{source, target, permissions}`.
    devices: (Array.isArray(s.devices) ? s.devices : []).map((d) => (isObj(d) ? scalarText(d.source) : scalarText(d).split(':')[0])),
    deviceCgroupRules: stringList(s.device_cgroup_rules),
    gpus: (s.gpus !== undefined && s.gpus !== null) || deviceReservations(s),
    securityOpt: stringList(s.security_opt),
    cgroup: typeof s.cgroup === 'string' ? s.cgroup : undefined,
    uts: typeof s.uts === 'string' ? s.uts : undefined,
    volumesFrom: stringList(s.volumes_from),
    hostPaths: hostPathUses(s, top),
    image: typeof s.image === 'string' ? s.image : undefined,
    builds: s.build !== undefined && s.build !== null,
    networks: Array.isArray(s.networks) ? s.networks.map(String) : isObj(s.networks) ? Object.keys(s.networks) : [],
    healthcheck: parseHealthcheck(s.healthcheck),
    placement: isObj(s.deploy) && isObj(s.deploy.placement) ? stringList(s.deploy.placement.constraints) : [],
    init: parseInit(s.init),
  };
}

/** `true`/`false` as printed; the old v2.x file format's path to an init binary also runs one. */
function parseInit(raw: unknown): boolean | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'boolean') return raw;
  const text = scalarText(raw).trim();
  if (text === '' || text === 'false') return false;
  return true;
}

function deviceReservations(s: Obj): boolean {
  const r = isObj(s.deploy) && isObj(s.deploy.resources) && isObj(s.deploy.resources.reservations) ? s.deploy.resources.reservations : {};
  return Array.isArray(r.devices) && r.devices.length > 0;
}

/** A build context or additional context given as a URL: git over https or ssh, or a remote tarball. */
export const isUrl = (v: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(v) || /^git@/.test(v) || /^github\.com\//.test(v);

/**
 * Every host path a service touches, after compose's merge (which makes relative paths absolute).
 * Named volumes count when their top-level entry gives `driver_opts.device` (a bind in disguise).
 */
function hostPathUses(s: Obj, top: TopLevel): HostPathUse[] {
  const out: HostPathUse[] = [];
  (Array.isArray(s.volumes) ? s.volumes : []).forEach((raw, i) => {
    const m = parseMount(raw);
    if (!m) return;
    if (m.type === 'bind') out.push({ key: `volumes[${i}]`, verb: `binds${m.readOnly ? ' (read-only)' : ''}`, path: m.source });
    if (m.type === 'volume') {
      const v = top.volumes[m.source];
      const device = v && isObj(v.driver_opts) ? v.driver_opts.device : undefined;
      if (device !== undefined) out.push({ key: `volumes[${i}]`, verb: `mounts volume ${m.source}, whose driver_opts.device is`, path: scalarText(device) });
    }
  });
  envFileList(s.env_file).forEach((p, i) => out.push({ key: `env_file[${i}]`, verb: 'reads', path: p }));
  for (const [kind, defs] of [
    ['secrets', top.secrets],
    ['configs', top.configs],
  ] as const) {
    (Array.isArray(s[kind]) ? s[kind] : []).forEach((raw, i) => {
      const source = isObj(raw) ? scalarText(raw.source) : scalarText(raw);
      const file = defs[source]?.file;
      if (typeof file === 'string') out.push({ key: `${kind}[${i}] (${source})`, verb: 'reads', path: file });
    });
  }
  const build = typeof s.build === 'string' ? { context: s.build } : isObj(s.build) ? s.build : undefined;
  if (build) {
    const context = scalarText(build.context ?? '.');
    out.push({ key: 'build.context', verb: 'builds from', path: context, url: isUrl(context) });
    const dockerfile = typeof build.dockerfile === 'string' ? build.dockerfile : undefined;
    // A relative dockerfile is read from the context (a URL context carries its own).
    if (dockerfile && (dockerfile.startsWith('/') || !isUrl(context))) {
      out.push({ key: 'build.dockerfile', verb: 'reads', path: dockerfile.startsWith('/') ? dockerfile : posix.join(context, dockerfile) });
    }
    const extra: Array<[string, string]> = isObj(build.additional_contexts)
      ? Object.entries(build.additional_contexts).map(([k, v]) => [k, scalarText(v)])
      : stringList(build.additional_contexts).map((x) => [x.split('=')[0], x.slice(x.indexOf('=') + 1)]);
    for (const [k, v] of extra) {
      // Images and other services are no host paths; an OCI layout directory is.
      if (/^(docker-image|service|target):/.test(v)) continue;
      const oci = /^oci-layout:\/\/(.*?)(?:[@:][^/]*)?$/.exec(v);
      out.push({ key: `build.additional_contexts.${k}`, verb: 'builds from', path: oci ? oci[1] : v, url: !oci && isUrl(v) });
    }
    (Array.isArray(build.secrets) ? build.secrets : []).forEach((raw, i) => {
      const source = isObj(raw) ? scalarText(raw.source) : scalarText(raw);
      const file = top.secrets[source]?.file;
      if (typeof file === 'string') out.push({ key: `build.secrets[${i}] (${source})`, verb: 'reads', path: file });
    });
    // `ssh: [default=/path/to/key]` hands a host key file to the build.
    const ssh = isObj(build.ssh)
      ? Object.values(build.ssh).map(scalarText)
      : stringList(build.ssh).map((x) => (x.includes('=') ? x.slice(x.indexOf('=') + 1) : ''));
    ssh.forEach((p, i) => {
      if (p) out.push({ key: `build.ssh[${i}]`, verb: 'hands the build the key file', path: p });
    });
  }
  return out;
}

/** `env_file` as a string, a list of strings, or (v2) a list of `{path, required}`. */
export function envFileList(raw: unknown): string[] {
  const items = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
  return items.map((x) => (isObj(x) ? scalarText(x.path) : scalarText(x))).filter((x) => x !== '');
}

/**
 * docker compose v2's `config` inlines env files into `environment` and drops the key; its
 * `config --no-interpolate` keeps the list, each path made absolute. Adds those paths to the model.
 */
export function addEnvFiles(model: ComposeModel, noInterpolateText: string): void {
  let doc: unknown;
  try {
    doc = parseYaml(noInterpolateText);
  } catch (e) {
    throw new ComposeConfigError(`the compose configuration without interpolation is not YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!isObj(doc) || !isObj(doc.services)) throw new ComposeConfigError('the compose configuration without interpolation has no services');
  for (const svc of model.services) {
    const raw = doc.services[svc.name];
    if (!isObj(raw)) continue;
    const have = new Set(svc.hostPaths.filter((u) => u.key.startsWith('env_file[')).map((u) => u.path));
    envFileList(raw.env_file).forEach((p, i) => {
      if (!have.has(p)) svc.hostPaths.push({ key: `env_file[${i}]`, verb: 'reads', path: p });
    });
  }
}

function parseHealthcheck(raw: unknown): ServiceModel['healthcheck'] {
  if (!isObj(raw)) return 'image';
  const test = Array.isArray(raw.test) ? raw.test.map(String) : typeof raw.test === 'string' ? [raw.test] : [];
  if (raw.disable === true || test[0] === 'NONE') return 'disabled';
  return test.length ? 'defined' : 'image';
}

const stringList = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

function portRange(text: string): number[] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text.trim());
  if (!m) return [];
  const from = Number(m[1]);
  const to = m[2] ? Number(m[2]) : from;
  if (to < from || to - from > 1000) return [];
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** `[ip:]published:target[/proto]`, `target` (not published), or the long form. */
export function parsePort(raw: unknown): PublishedPort[] {
  if (typeof raw === 'number') return [];
  if (isObj(raw)) {
    if (raw.published === undefined || raw.published === null || raw.published === '') return [];
    const protocol = typeof raw.protocol === 'string' ? raw.protocol : 'tcp';
    const hostIp = typeof raw.host_ip === 'string' ? raw.host_ip : '';
    return portRange(scalarText(raw.published)).map((port) => ({ hostIp, port, protocol }));
  }
  if (typeof raw !== 'string') return [];
  const [spec, proto = 'tcp'] = raw.split('/');
  let rest = spec;
  let hostIp = '';
  const v6 = /^\[([^\]]*)\]:(.*)$/.exec(rest);
  if (v6) {
    hostIp = v6[1];
    rest = v6[2];
  }
  const parts = rest.split(':');
  if (parts.length < 2) return [];
  const published = parts[parts.length - 2];
  if (!v6 && parts.length > 2) hostIp = parts.slice(0, -2).join(':');
  if (!published) return [];
  return portRange(published).map((port) => ({ hostIp, port, protocol: proto }));
}

/** `source:target[:mode]`, `target` (anonymous), or the long form. */
export function parseMount(raw: unknown): Mount | undefined {
  if (isObj(raw)) {
    const type = raw.type === 'bind' || raw.type === 'volume' ? raw.type : 'other';
    if (typeof raw.source !== 'string' || !raw.source) return undefined;
    return { type, source: raw.source, target: scalarText(raw.target), readOnly: raw.read_only === true };
  }
  if (typeof raw !== 'string') return undefined;
  const parts = raw.split(':');
  if (parts.length < 2) return undefined;
  const [source, target, mode = ''] = parts;
  const isPath = /^[./~]/.test(source);
  return { type: isPath ? 'bind' : 'volume', source, target, readOnly: mode.split(',').includes('ro') };
}

function parseLabels(raw: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isObj(raw)) for (const [k, v] of Object.entries(raw)) out[k] = scalarText(v);
  else if (Array.isArray(raw)) {
    for (const item of raw.map(String)) {
      const eq = item.indexOf('=');
      if (eq > 0) out[item.slice(0, eq)] = item.slice(eq + 1);
      else out[item] = '';
    }
  }
  return out;
}

/** Domains a service claims through caddy-docker-proxy labels (`caddy`, `caddy_0`, ...). */
export function caddyDomains(labels: Record<string, string>): string[] {
  const out = new Set<string>();
  for (const [k, v] of Object.entries(labels)) {
    if (!/^caddy(_\d+)?$/.test(k)) continue;
    for (const addr of v.split(/[\s,]+/)) {
      if (!addr || addr.includes('{')) continue;
      const host = addr
        .replace(/^[a-z]+:\/\//i, '')
        .replace(/\/.*$/, '')
        .replace(/:\d+$/, '')
        .toLowerCase();
      if (host) out.add(host);
    }
  }
  return [...out].sort();
}

/** The service sets an `X-Robots-Tag` header containing noindex through its caddy labels. */
export function hasNoindexLabel(labels: Record<string, string>): boolean {
  return Object.entries(labels).some(([k, v]) =>
    /^caddy(_\d+)?(\.[^.]+)*\.header\.x-robots-tag$/i.test(k)
      ? /noindex/i.test(v)
      : /^caddy(_\d+)?(\.[^.]+)*\.header$/i.test(k) && /x-robots-tag\s+"?[^"]*noindex/i.test(v),
  );
}

/** The service puts basic authentication in front of something (`basicauth`, or Caddy 2.8's `basic_auth`). */
export function hasBasicAuthLabel(labels: Record<string, string>): boolean {
  return Object.keys(labels).some((k) => /^caddy(_\d+)?(\.[^.]+)*\.basic_?auth(\.|$)/i.test(k));
}
