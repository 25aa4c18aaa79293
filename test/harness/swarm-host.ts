/**
 * A single-node swarm the way the swarm tests need it, in one call: a private Docker engine
 * (private-engine.ts; the machine's shared engine never becomes a swarm) made a swarm manager, its
 * node labelled for the environments asked (twinstack.env.<env>=true), the images asked copied in
 * from the shared engine; optionally a registry on loopback (registry.ts) and a real sshd whose
 * sessions reach the private engine (sshd.ts with DOCKER_HOST), connected. stop() undoes all of it,
 * in reverse order, and says what it left behind.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from './connect';
import { startPrivateEngine, type PrivateEngine } from './private-engine';
import { registryAvailable, startRegistry, type TestRegistry } from './registry';
import { sshdAvailable, startSshd, type TestSshd } from './sshd';

export const BASE_IMAGE = 'twinstack-fixture-base:latest';

export interface SwarmHostOptions {
  /** Environments whose label the node carries (twinstack.env.<env>=true). */
  labels?: ReadonlyArray<'prod' | 'dev'>;
  /** Images copied from the shared engine; by default the fixture base image. */
  images?: readonly string[];
  registry?: boolean;
  /** A real sshd whose sessions reach the engine, and a connection to it. */
  ssh?: boolean;
}

export interface SwarmHost {
  engine: PrivateEngine;
  /** This run's random part: resources are named twinstack-test-<run>-... */
  run: string;
  /** The swarm's one node id. */
  node: string;
  registry?: TestRegistry;
  sshd?: TestSshd;
  host?: SshHost;
  /** twinstack-test-<run>-<suffix>: a stack, directory or image name of this run. */
  name(suffix: string): string;
  /** The image a service's spec names (`<stack>_<service>`), as the engine says. */
  specImage(service: string): string;
  /** The images of a service's tasks that should run, with their state (`<image> <current state>`). */
  runningTasks(service: string): string[];
  /** The container ids (12 characters) of a service's running tasks on this node. */
  taskContainers(service: string): string[];
  stop(): Promise<void>;
}

/** Why the swarm tests cannot run on this machine, or false. */
export function swarmHostSkip(o: SwarmHostOptions = {}): string | false {
  if (process.getuid?.() !== 0) return 'needs root to start dockerd';
  return (o.ssh ? sshdAvailable() : undefined) ?? (o.registry ? registryAvailable() : undefined) ?? false;
}

export async function startSwarmHost(o: SwarmHostOptions = {}): Promise<SwarmHost> {
  const run = randomBytes(4).toString('hex');
  const engine = await startPrivateEngine();
  const started: Partial<Pick<SwarmHost, 'registry' | 'sshd' | 'host'>> = {};
  const stop = () => stopAll(engine, started);
  try {
    await engine.swarmInit();
    for (const image of o.images ?? [BASE_IMAGE]) engine.loadImage(image);
    const node = engine.docker(['node', 'ls', '-q']).trim();
    for (const env of o.labels ?? []) engine.docker(['node', 'update', '--label-add', `twinstack.env.${env}=true`, node]);
    if (o.registry) started.registry = await startRegistry();
    if (o.ssh) {
      started.sshd = await startSshd({ setEnv: { DOCKER_HOST: engine.host } });
      started.host = await connect(started.sshd);
    }
    const lines = (out: string) => out.split('\n').filter(Boolean);
    return {
      engine,
      run,
      node,
      ...started,
      name: (suffix) => `twinstack-test-${run}-${suffix}`,
      specImage: (service) => engine.docker(['service', 'inspect', '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}', service]).trim(),
      runningTasks: (service) =>
        lines(engine.docker(['service', 'ps', '--no-trunc', '--filter', 'desired-state=running', '--format', '{{.Image}} {{.CurrentState}}', service])),
      taskContainers: (service) => lines(engine.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`])),
      stop,
    };
  } catch (e) {
    await stop().catch((se: unknown) => process.stderr.write(`stopping the swarm host after a failed start: ${String(se)}\n`));
    throw e;
  }
}

async function stopAll(engine: PrivateEngine, started: Partial<Pick<SwarmHost, 'registry' | 'sshd' | 'host'>>): Promise<void> {
  await started.host?.close();
  await started.sshd?.stop();
  await engine.stop();
  assert.ok(!fs.existsSync(engine.dir), `${engine.dir} is left behind`);
  const store = started.registry?.dir;
  await started.registry?.stop();
  if (store) assert.ok(!fs.existsSync(store), `${store} is left behind`);
}
