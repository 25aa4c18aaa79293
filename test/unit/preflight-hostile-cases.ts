/**
 * Hostile dev overlays for preflight's isolation gate: each is a third compose file on top of the
 * Makapix-shaped fixture (test/fixtures/preflight/stack) in dev's checkout, and each must be refused
 * with a finding that names the service, the compose key and the path. The unit suite runs them
 * through real `docker compose config` with paths only normalized; the integration suite runs them
 * through preflight over SSH, where paths are resolved on the host (the symlink cases need that).
 *
 * Covered: what generic Docker Compose scanners look for (privileged, host namespaces, the Docker
 * socket, sensitive host directories, cap_add, security_opt, devices, cgroups, volumes_from, another
 * container's pid/ipc/network), and what only the prod/dev relationship shows (prod's checkout, env
 * file, vault and containers, twinstack's state and backup directories, symlinks out of dev's checkout).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfig, type Config } from '../../src/domain/config';

export const FIXTURE = path.join(__dirname, '../fixtures/preflight/stack');
export const STATE_DIR = '/var/lib/twinstack';
export const BACKUP_DIR = '/var/backups/twinstack';
export const HOSTILE_FILE = 'deploy/stack/docker-compose.hostile.yml';

export interface Dirs {
  prod: string;
  dev: string;
}

export interface HostileCase {
  name: string;
  /** The hostile overlay (YAML), given both checkouts. */
  overlay: (d: Dirs) => string;
  /** Files or symlinks to make in dev's checkout first. */
  setup?: (d: Dirs) => void;
  /** The check that must refuse it, and what its message must name (service, key, path). */
  expect: (d: Dirs) => { check: string; names: string[] };
  /** Only a host that resolves symlinks can see it (run over SSH only). */
  host?: boolean;
}

const svc = (name: string, body: string) => `services:\n  ${name}:\n${body.replace(/^/gm, '    ')}\n`;
const bind = (source: string, target = '/mnt/x', extra = '') => svc('api', `volumes:\n  - ${source}:${target}${extra}`);
const dev = (service: string, key: string, ...names: string[]) => ({ check: 'dev-escape', names: [`dev service ${service}: ${key}`, ...names] });
const outside = (service: string, key: string, ...names: string[]) => ({ check: 'dev-paths', names: [`dev service ${service}: ${key}`, ...names] });
const reaches = (service: string, key: string, ...names: string[]) => ({ check: 'dev-mounts', names: [`dev service ${service}: ${key}`, ...names] });

export const HOSTILE: HostileCase[] = [
  // What generic scanners check.
  { name: 'privileged', overlay: () => svc('api', 'privileged: true'), expect: () => dev('api', 'privileged: true') },
  { name: 'cap_add SYS_ADMIN', overlay: () => svc('worker', 'cap_add: [SYS_ADMIN]'), expect: () => dev('worker', 'cap_add', 'SYS_ADMIN') },
  {
    name: 'security_opt seccomp unconfined',
    overlay: () => svc('api', 'security_opt: ["seccomp:unconfined"]'),
    expect: () => dev('api', 'security_opt', 'unconfined'),
  },
  {
    name: 'the Docker socket',
    overlay: () => bind('/var/run/docker.sock', '/var/run/docker.sock'),
    expect: () => dev('api', 'volumes[', '/var/run/docker.sock', 'Docker socket'),
  },
  { name: "the host's root", overlay: () => bind('/', '/host', ':ro'), expect: () => dev('api', 'volumes[', "the host's root") },
  {
    name: 'a bind of /etc',
    overlay: () => bind('/etc', '/host-etc', ':ro'),
    expect: () => outside('api', 'volumes[', 'binds (read-only) /etc (resolved /etc)'),
  },
  { name: "a bind of root's SSH keys", overlay: () => bind('/root/.ssh'), expect: () => outside('api', 'volumes[', '/root/.ssh') },
  { name: "a bind of Docker's volumes", overlay: () => bind('/var/lib/docker/volumes'), expect: () => outside('api', 'volumes[', '/var/lib/docker/volumes') },
  {
    name: 'a long-syntax bind of /etc',
    overlay: () => svc('worker', 'volumes:\n  - type: bind\n    source: /etc\n    target: /e\n    read_only: true'),
    expect: () => outside('worker', 'volumes[', '/etc'),
  },
  { name: 'pid: host', overlay: () => svc('api', 'pid: host'), expect: () => dev('api', 'pid: host') },
  { name: 'ipc: host', overlay: () => svc('api', 'ipc: host'), expect: () => dev('api', 'ipc: host') },
  {
    name: 'network_mode: host, not allowed by the config',
    overlay: () => svc('api', 'network_mode: host\nnetworks: !reset []'),
    expect: () => dev('api', 'network_mode: host'),
  },
  { name: 'uts: host', overlay: () => svc('api', 'uts: host'), expect: () => dev('api', 'uts: host') },
  { name: 'userns_mode: host', overlay: () => svc('api', 'userns_mode: host'), expect: () => dev('api', 'userns_mode: host') },
  { name: 'cgroup: host', overlay: () => svc('api', 'cgroup: host'), expect: () => dev('api', 'cgroup: host') },
  { name: 'a host device', overlay: () => svc('worker', 'devices: ["/dev/sda:/dev/sda"]'), expect: () => dev('worker', 'devices[0]', '/dev/sda') },
  {
    name: 'device cgroup rules',
    overlay: () => svc('worker', 'device_cgroup_rules: ["b 8:* rmw"]'),
    expect: () => dev('worker', 'device_cgroup_rules[0]', 'b 8:* rmw'),
  },
  { name: 'gpus', overlay: () => svc('worker', 'gpus: all'), expect: () => dev('worker', 'gpus') },
  {
    name: 'a GPU device reservation',
    overlay: () =>
      svc('worker', 'deploy:\n  resources:\n    reservations:\n      devices:\n        - driver: nvidia\n          count: all\n          capabilities: [gpu]'),
    expect: () => dev('worker', 'gpus'),
  },
  // Prod's containers as namespace or volume sources.
  {
    name: "volumes_from prod's db",
    overlay: () => svc('api', 'volumes_from: ["container:makapix-prod-db"]'),
    expect: () => dev('api', 'volumes_from[0]', 'makapix-prod-db', "prod's"),
  },
  {
    name: "pid: prod's api",
    overlay: () => svc('worker', 'pid: "container:makapix-prod-api"'),
    expect: () => dev('worker', 'pid: container:makapix-prod-api', "prod's"),
  },
  {
    name: "ipc: prod's api",
    overlay: () => svc('worker', 'ipc: "container:makapix-prod-api"'),
    expect: () => dev('worker', 'ipc: container:makapix-prod-api', "prod's"),
  },
  {
    name: "network_mode: prod's db",
    overlay: () => svc('worker', 'network_mode: "container:makapix-prod-db"\nnetworks: !reset []'),
    expect: () => dev('worker', 'network_mode: container:makapix-prod-db', "prod's"),
  },
  // Prod's files and twinstack's own directories. (Dev's builds tag their own image names, so only the path is wrong.)
  { name: "a bind of prod's checkout", overlay: (d) => bind(d.prod, '/prod', ':ro'), expect: (d) => reaches('api', 'volumes[', d.prod, "prod's checkout") },
  {
    name: "a bind of prod's env file",
    overlay: (d) => bind(`${d.prod}/deploy/stack/.env.prod`, '/prod.env', ':ro'),
    expect: (d) => reaches('api', 'volumes[', `${d.prod}/deploy/stack/.env.prod`, "prod's checkout"),
  },
  {
    name: "a bind of prod's vault",
    overlay: () => bind('/mnt/vault-1', '/vault-prod'),
    expect: () => reaches('api', 'volumes[', '/mnt/vault-1', "prod's vault"),
  },
  { name: "twinstack's state directory", overlay: () => bind(STATE_DIR, '/state'), expect: () => reaches('api', 'volumes[', STATE_DIR, 'state directory') },
  { name: 'the backup directory', overlay: () => bind(BACKUP_DIR, '/b', ':ro'), expect: () => reaches('api', 'volumes[', BACKUP_DIR, 'backup directory') },
  {
    name: "a local volume binding prod's checkout through driver_opts",
    overlay: (d) =>
      `${svc('api', 'volumes: ["sneaky:/src"]')}volumes:\n  sneaky:\n    driver: local\n    driver_opts: {type: none, o: bind, device: ${d.prod}}\n`,
    expect: (d) => reaches('api', 'volumes[', 'driver_opts.device', d.prod),
  },
  {
    name: "a local volume on twinstack's pending scripts through driver_opts",
    overlay: () => `${svc('worker', 'volumes: ["pending:/p"]')}volumes:\n  pending:\n    driver_opts: {type: none, o: bind, device: ${STATE_DIR}/pending}\n`,
    expect: () => reaches('worker', 'volumes[', `${STATE_DIR}/pending`, 'state directory'),
  },
  {
    name: "env_file reading prod's env file",
    overlay: (d) => svc('api', `env_file: [.env.dev, ${d.prod}/deploy/stack/.env.prod]`),
    expect: (d) => reaches('api', 'env_file[1]', `${d.prod}/deploy/stack/.env.prod`),
  },
  {
    name: "a secret reading prod's env file",
    overlay: (d) => `${svc('api', 'secrets: [prodenv]')}secrets:\n  prodenv:\n    file: ${d.prod}/deploy/stack/.env.prod\n`,
    expect: (d) => reaches('api', 'secrets[0] (prodenv)', `${d.prod}/deploy/stack/.env.prod`),
  },
  {
    name: "a config reading prod's backups",
    overlay: () => `${svc('worker', 'configs: [dump]')}configs:\n  dump:\n    file: ${BACKUP_DIR}/latest.sql.gz\n`,
    expect: () => reaches('worker', 'configs[0] (dump)', `${BACKUP_DIR}/latest.sql.gz`),
  },
  {
    name: "a build context in prod's checkout",
    overlay: (d) => svc('api', `image: makapix-dev-api:local\nbuild:\n  context: ${d.prod}/deploy`),
    expect: (d) => reaches('api', 'build.context', `${d.prod}/deploy`, "prod's checkout"),
  },
  {
    name: "a dockerfile that climbs out of dev's checkout into prod's",
    overlay: () => svc('api', 'image: makapix-dev-api:local\nbuild:\n  context: ..\n  dockerfile: ../../makapix/deploy/Dockerfile'),
    expect: (d) => reaches('api', 'build.dockerfile', `${d.prod}/deploy/Dockerfile`),
  },
  {
    name: 'an additional build context on /root',
    overlay: () => svc('api', 'image: makapix-dev-api:local\nbuild:\n  context: .\n  additional_contexts:\n    keys: /root'),
    expect: () => outside('api', 'build.additional_contexts.keys', '/root'),
  },
  {
    name: 'a build context that is a git URL',
    overlay: () => svc('worker', 'image: makapix-dev-worker:local\nbuild: https://github.com/example/tool.git#main'),
    expect: () => outside('worker', 'build.context', 'https://github.com/example/tool.git', 'URL'),
  },
  // Symlinks in dev's checkout: compose prints them as paths inside the checkout; only the host can see where they go.
  {
    name: "a symlink in dev's checkout to /etc",
    setup: (d) => fs.symlinkSync('/etc', path.join(d.dev, 'deploy/stack/escape')),
    overlay: () => bind('./escape', '/e', ':ro'),
    expect: (d) => outside('api', 'volumes[', `${d.dev}/deploy/stack/escape (resolved /etc)`),
    host: true,
  },
  {
    name: "a symlink in dev's checkout to prod's checkout",
    setup: (d) => fs.symlinkSync(d.prod, path.join(d.dev, 'shared')),
    overlay: () => bind('../../shared/deploy/stack', '/s'),
    expect: (d) => reaches('api', 'volumes[', `${d.dev}/shared/deploy/stack (resolved ${d.prod}/deploy/stack)`, "prod's checkout"),
    host: true,
  },
  {
    name: "an env_file symlinked to prod's env file",
    setup: (d) => fs.symlinkSync(path.join(d.prod, 'deploy/stack/.env.prod'), path.join(d.dev, 'deploy/stack/.env.local')),
    overlay: () => svc('worker', 'env_file: [.env.dev, .env.local]'),
    expect: (d) => reaches('worker', 'env_file[1]', `(resolved ${d.prod}/deploy/stack/.env.prod)`),
    host: true,
  },
  {
    name: "a symlinked directory in dev's checkout as a build context in twinstack's state directory",
    setup: (d) => fs.symlinkSync(STATE_DIR, path.join(d.dev, 'ctx')),
    overlay: () => svc('api', 'image: makapix-dev-api:local\nbuild:\n  context: ../../ctx'),
    expect: (d) => reaches('api', 'build.context', `${d.dev}/ctx (resolved ${STATE_DIR})`),
    host: true,
  },
];

/** Two checkouts of the fixture stack under `root` (prod's named makapix, dev's makapix-dev, side by side). */
export function makeCheckouts(root: string, name: string): Dirs {
  const base = path.join(root, name);
  const d = { prod: path.join(base, 'makapix'), dev: path.join(base, 'makapix-dev') };
  for (const dir of [d.prod, d.dev]) {
    fs.mkdirSync(path.join(dir, 'deploy'), { recursive: true });
    fs.cpSync(FIXTURE, path.join(dir, 'deploy/stack'), { recursive: true });
  }
  return d;
}

/** Makapix's config for checkouts `d`, with docker compose v2 and the hostile overlay as dev's third file. */
export function hostileConfig(d: Dirs, extra = '', devPaths = ['/var/log/caddy']): Config {
  return parseConfig(
    `compose-command: docker compose
state-dir: ${STATE_DIR}
backup: { dir: ${BACKUP_DIR} }
environments:
  prod:
    checkout: ${d.prod}
    project: makapix-prod
    compose-files: [deploy/stack/docker-compose.yml, deploy/stack/docker-compose.prod.yml]
    env-file: deploy/stack/.env.prod
    url: https://makapix.club
    database: {name: makapix, user: owner}
    vault: /mnt/vault-1
  dev:
    checkout: ${d.dev}
    project: makapix-dev
    compose-files: [deploy/stack/docker-compose.yml, deploy/stack/docker-compose.dev.yml, ${HOSTILE_FILE}]
    env-file: deploy/stack/.env.dev
    url: https://development.makapix.club
    database: {name: makapix_dev, user: owner, port: 5433}
    vault: /mnt/vault-dev
preflight:
  # Makapix's worker reads the shared proxy's logs (/var/log/caddy).
  dev-paths: [${devPaths.join(', ')}]
${extra}`,
    'twinstack.yml',
  );
}
