/**
 * A real image registry for tests: Debian's `docker-registry` (the distribution project's registry
 * v2) serving on a free 127.0.0.1 port, its storage in a temporary directory of its own. A Docker
 * engine pushes to and pulls from a loopback registry over plain HTTP without any setting (dockerd
 * treats 127.0.0.0/8 as insecure-allowed). stop() ends the one process it started and removes the
 * directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, waitForPort } from './ports';

const BINARY = '/usr/bin/docker-registry';

export interface TestRegistry {
  /** `127.0.0.1:<port>`: what config's swarm.registry names. */
  address: string;
  dir: string;
  /** The tags of a repository, read from the registry's own API. */
  tags(repository: string): Promise<string[]>;
  /** Whether the registry holds a manifest of the repository by this digest (sha256:...). */
  hasManifest(repository: string, digest: string): Promise<boolean>;
  stop(): Promise<void>;
}

export function registryAvailable(): string | undefined {
  return fs.existsSync(BINARY) ? undefined : 'docker-registry is not installed: apt-get install docker-registry (or run .ci/install.sh)';
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

export async function startRegistry(): Promise<TestRegistry> {
  const missing = registryAvailable();
  if (missing) throw new Error(missing);
  const dir = fs.mkdtempSync(`/tmp/twinstack-test-registry-${randomBytes(3).toString('hex')}-`);
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  // JSON is YAML: the registry's configuration, storage and listener its own.
  const config = {
    version: 0.1,
    log: { level: 'warn' },
    storage: { filesystem: { rootdirectory: path.join(dir, 'data') }, delete: { enabled: true } },
    http: { addr: address },
  };
  fs.writeFileSync(path.join(dir, 'config.yml'), JSON.stringify(config));
  const log = fs.openSync(path.join(dir, 'registry.log'), 'a');
  const child = spawn(BINARY, ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      if (!(await exited(child, 10_000))) {
        child.kill('SIGKILL');
        await exited(child, 10_000);
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, 30_000);
  } catch (e) {
    const tail = fs.readFileSync(path.join(dir, 'registry.log'), 'utf8').slice(-600);
    await stop();
    throw new Error(`docker-registry did not start: ${(e as Error).message}\n${tail}`, { cause: e });
  }
  return {
    address,
    dir,
    async tags(repository) {
      const res = await fetch(`http://${address}/v2/${repository}/tags/list`);
      if (res.status === 404) return [];
      const body = (await res.json()) as { tags?: string[] | null };
      return body.tags ?? [];
    },
    async hasManifest(repository, digest) {
      const accept = ['application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.oci.image.manifest.v1+json'].join(', ');
      const res = await fetch(`http://${address}/v2/${repository}/manifests/${digest}`, { method: 'HEAD', headers: { accept } });
      return res.status === 200;
    },
    stop,
  };
}
