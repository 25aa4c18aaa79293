/**
 * A second Docker engine of the test's own, for what must never touch the machine's shared engine
 * (a swarm: `docker swarm init`, stacks). Its own data root, exec root (so its own supervised
 * containerd), socket, pid file and cgroup parent; no bridge, no iptables rules, no forwarding, so
 * the host's network is left as it was. Needs root. stop() removes what the engine ran, leaves
 * the swarm, ends the daemon (the one process this harness started) and removes its directories
 * and its cgroup parent.
 *
 * Two such engines make a two-node swarm in the machine's one network namespace, on loopback
 * only: each node listens on an address of its own in 127.0.0.0/8 (the gossip port, 7946, is the
 * same for every node, so two nodes cannot share an address), the second runs in a UTS namespace
 * of its own so that its node has a hostname of its own, and the manager's routing-mesh network
 * (ingress) is removed before the worker joins: the ingress VXLAN device of a second node in the
 * same namespace clashes with the first's ("error creating vxlan interface: file exists").
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, loopbackAddress } from './ports';

export interface PrivateEngine {
  /** `unix:///tmp/<dir>/docker.sock`: for `docker -H` or DOCKER_HOST. */
  host: string;
  /** The directory holding everything the engine wrote. */
  dir: string;
  /** Runs the docker client against this engine; throws with its stderr on a non-zero exit. */
  docker(args: readonly string[], opts?: { input?: string | Buffer; cwd?: string }): string;
  /**
   * Makes the engine a swarm manager listening on loopback only (an address of its own in
   * 127.0.0.0/8 unless told: see loopbackAddress), and
   * returns its `address:port`. With ingress: false the routing mesh's network is removed, which a
   * second node in this network namespace needs.
   */
  swarmInit(opts?: { address?: string; ingress?: boolean }): Promise<string>;
  /** Joins the swarm of `manager` (swarmInit done) as a worker listening on `address` (loopback, not the manager's). */
  swarmJoin(manager: PrivateEngine, address: string): Promise<void>;
  /** The `address:port` swarmInit made the manager listen on. */
  swarmAddress?: string;
  /** This engine's swarm node id. */
  nodeId(): string;
  /**
   * Copies an image from the shared engine, without a registry: from the image's archive when
   * scripts/test.sh saved one (TWINSTACK_IMAGE_ARCHIVES, see imageArchive), so that the swarm files
   * running beside the end-to-end files never ask the shared engine (which one of those restarts);
   * else docker save | docker load.
   */
  loadImage(image: string): void;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Where scripts/test.sh saves an image for the private engines: `$TWINSTACK_IMAGE_ARCHIVES/<name, / and : as _>.tar`; undefined when unset. */
export function imageArchive(image: string): string | undefined {
  const dir = process.env.TWINSTACK_IMAGE_ARCHIVES;
  return dir ? path.join(dir, `${image.replace(/[/:]/g, '_')}.tar`) : undefined;
}

function exitedWithin(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** Mount points left under `dir` (the engine's netns bind mount survives its stop), deepest first. */
function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
}

export interface EngineOptions {
  /**
   * The hostname the engine, and so its swarm node, reports: it then runs in a UTS namespace of
   * its own (its network namespace stays the machine's). Engines of one machine otherwise all
   * report the machine's name.
   */
  hostname?: string;
}

/** The bridge a swarm node creates for its overlay networks' gateways, in the machine's network namespace. */
const GWBRIDGE = '/sys/class/net/docker_gwbridge';

export async function startPrivateEngine(options: EngineOptions = {}): Promise<PrivateEngine> {
  if (process.getuid?.() !== 0) throw new Error('a private Docker engine needs root (dockerd)');
  const dir = fs.mkdtempSync(`/tmp/twinstack-test-engine-${randomBytes(3).toString('hex')}-`);
  const host = `unix://${dir}/docker.sock`;
  const log = fs.openSync(path.join(dir, 'dockerd.log'), 'a');
  const dockerd = [
    ...['dockerd', '--data-root', `${dir}/data`, '--exec-root', `${dir}/exec`, '-H', host, '--pidfile', `${dir}/docker.pid`],
    ...['--bridge=none', '--iptables=false', '--ip-forward=false', '--ip-masq=false', '--cgroup-parent', path.basename(dir)],
    // The local networks it makes (a swarm's docker_gwbridge, in the machine's network namespace)
    // come from a range of their own, 198.18.0.0/15 (reserved for benchmarks, never routed), so they
    // never overlap the networks the end-to-end suites create on the shared engine meanwhile.
    ...['--default-address-pool', 'base=198.18.0.0/16,size=24'],
  ];
  // unshare and sh exec, so the child's pid is the daemon's (stop() signals it).
  const argv = options.hostname ? ['unshare', '--uts', 'sh', '-c', 'hostname "$1" && shift && exec "$@"', 'sh', options.hostname, ...dockerd] : dockerd;
  const daemon = spawn(argv[0], argv.slice(1), { stdio: ['ignore', log, log] });
  let madeGwbridge = false;
  fs.closeSync(log);
  const docker: PrivateEngine['docker'] = (args, opts = {}) =>
    execFileSync('docker', ['-H', host, ...args], { encoding: 'utf8', input: opts.input, cwd: opts.cwd, timeout: 180_000, stdio: ['pipe', 'pipe', 'pipe'] });
  const engine: PrivateEngine = {
    host,
    dir,
    docker,
    async swarmInit({ address = loopbackAddress(), ingress = true } = {}) {
      const addr = `${address}:${await freePort(address)}`;
      const hadGwbridge = fs.existsSync(GWBRIDGE);
      docker(['swarm', 'init', '--advertise-addr', addr, '--listen-addr', addr]);
      madeGwbridge = !hadGwbridge && fs.existsSync(GWBRIDGE);
      if (!ingress) docker(['network', 'rm', 'ingress'], { input: 'y\n' });
      engine.swarmAddress = addr;
      return addr;
    },
    async swarmJoin(manager, address) {
      if (!manager.swarmAddress) throw new Error('swarmJoin: the manager has no swarm (swarmInit first)');
      const token = manager.docker(['swarm', 'join-token', '-q', 'worker']).trim();
      const addr = `${address}:${await freePort(address)}`;
      docker(['swarm', 'join', '--token', token, '--advertise-addr', addr, '--listen-addr', addr, '--data-path-addr', address, manager.swarmAddress]);
    },
    nodeId: () => docker(['info', '--format', '{{.Swarm.NodeID}}']).trim(),
    loadImage(image) {
      const archive = imageArchive(image);
      if (archive && fs.existsSync(archive)) execFileSync('docker', ['-H', host, 'load', '-i', archive], { stdio: 'ignore', timeout: 600_000 });
      else execFileSync('bash', ['-c', 'docker save "$1" | docker -H "$2" load', 'load', image, host], { stdio: 'ignore', timeout: 600_000 });
    },
    stop: () => stopEngine({ daemon, dir, docker, madeGwbridge }),
  };
  // Started when its API answers; the machine is shared, so start-up may take a while.
  for (let i = 0; ; i++) {
    try {
      docker(['version', '--format', '{{.Server.Version}}']);
      return engine;
    } catch (e) {
      if (daemon.exitCode !== null || i >= 240) {
        const tail = fs.readFileSync(path.join(dir, 'dockerd.log'), 'utf8').slice(-600);
        await engine.stop();
        throw new Error(`the private dockerd did not start: ${(e as Error).message.split('\n')[0]}\n${tail}`, { cause: e });
      }
      await sleep(500);
    }
  }
}

interface Stopping {
  daemon: ChildProcess;
  dir: string;
  docker: PrivateEngine['docker'];
  /** swarmInit created docker_gwbridge (there was none): the engine leaves it behind when it stops. */
  madeGwbridge: boolean;
}

async function stopEngine({ daemon, dir, docker, madeGwbridge }: Stopping): Promise<void> {
  const attempt = (args: string[]): string => {
    try {
      return docker(args);
    } catch {
      // The engine may never have started, or have no swarm: nothing to undo then.
      return '';
    }
  };
  if (daemon.exitCode === null && daemon.signalCode === null) {
    for (const stack of attempt(['stack', 'ls', '--format', '{{.Name}}']).split('\n').filter(Boolean)) attempt(['stack', 'rm', stack]);
    attempt(['swarm', 'leave', '--force']);
    daemon.kill('SIGTERM');
    if (!(await exitedWithin(daemon, 60_000))) {
      daemon.kill('SIGKILL');
      await exitedWithin(daemon, 10_000);
    }
  }
  for (const m of mountsUnder(dir)) execFileSync('umount', [m]);
  fs.rmSync(dir, { recursive: true, force: true });
  // Checked one by one: on v1, some controllers are links to others (cpu -> cpu,cpuacct).
  for (const d of cgroupDirs(path.basename(dir))) if (fs.existsSync(d)) fs.rmdirSync(d);
  // Only when nothing is attached to it any more: another engine of the machine may have come to use it.
  if (madeGwbridge && fs.existsSync(GWBRIDGE) && fs.readdirSync(`${GWBRIDGE}/brif`).length === 0) execFileSync('ip', ['link', 'delete', 'docker_gwbridge']);
}

/** The (empty, once the engine stopped) cgroup directories of the engine's cgroup parent: v1's one per controller, or v2's one. */
function cgroupDirs(parent: string): string[] {
  const root = '/sys/fs/cgroup';
  const candidates = [path.join(root, parent), ...fs.readdirSync(root).map((c) => path.join(root, c, parent))];
  return candidates;
}
