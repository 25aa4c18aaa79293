/**
 * The VPS as a one-node Docker Swarm for dev (target: swarm), as the orchestration tests see it:
 * FakeVps (prod stays on compose, its answers unchanged) with rules that keep a model of the
 * swarm's side of the host: the images built on the manager and their RepoDigests, the registry,
 * dev's stack (each service's spec and update status, its tasks) and the digest overlay deploy
 * writes. Commands change the model as they would change the host: `docker push` gives the image a
 * digest, `docker stack deploy` changes the specs it names, and the engine's update then moves one
 * step each time the watch lists the stack's services: updating → completed, or updating →
 * rollback_completed with a failed task, or it stays updating, as the test said of the service
 * (`outcome`). The converted fixture stack (test/fixtures/swarm) is dev's configuration.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfig, type Config, type EnvironmentName } from '../../src/domain/config';
import { shellWords, type Call, type Reply } from './fake-host';
import { FakeVps, imageId } from './fake-vps';

const FIXTURES = path.join(__dirname, '../fixtures');
const SWARM_DIR = path.join(FIXTURES, 'swarm');
export const REGISTRY = '127.0.0.1:5000';
export const STACK = 'makapix-dev';
/** prod's stack, when prod is on the swarm too (`prodOnSwarm`). */
export const PROD_STACK = 'makapix-prod';
/** The worker's image: not built here; pulled (so it has a digest) unless the test says otherwise. */
export const BASE_IMAGE = 'twinstack-fixture-base:latest';
/**
 * dev's merged configuration: the converted fixture stack as `docker compose config` printed it,
 * its paths moved from where it was captured to dev's checkout and vault.
 */
const DEV_CONFIG = fs.readFileSync(path.join(SWARM_DIR, 'config/dev.json'), 'utf8').replace(/\/srv\/makapix-dev\/vault/g, '/mnt/vault-dev');
/** prod's, the same way (with `prodOnSwarm`). */
const PROD_CONFIG = fs.readFileSync(path.join(SWARM_DIR, 'config/prod.json'), 'utf8').replace(/\/srv\/makapix\/vault/g, '/mnt/vault-1');
/** A merged configuration as compose prints it in `dir` (its build contexts are absolute paths there). */
const configIn = (text: string, dir: string) => text.replace(/\/tmp\/tmp\.[A-Za-z0-9]+\/(?:dev|prod)/g, dir);
/** dev's services, their image names and whether they are built (api and db are; the worker is pulled). */
export const SWARM_SERVICES: Array<{ service: string; image: string; build: boolean }> = Object.entries(
  (JSON.parse(DEV_CONFIG) as { services: Record<string, { image: string; build?: unknown }> }).services,
).map(([service, s]) => ({ service, image: s.image, build: s.build !== undefined }));
const NODE = 'vps';
const NODE_ID = 'n0de0000000000000000000000';

/** What the engine makes of a service's update (see FakeSwarm.outcome). */
export type Outcome = 'converge' | 'rollback' | 'stuck';

export interface FakeTask {
  ID: string;
  Name: string;
  Image: string;
  Node: string;
  DesiredState: string;
  CurrentState: string;
  Error: string;
}

export interface FakeService {
  /** The stack's name of the service (`api`); the engine's is `makapix-dev_api`. */
  service: string;
  id: string;
  /** The image the spec names. */
  image: string;
  update?: { State: string; Message: string; StartedAt: string };
  /** The update's next steps, one taken each time the stack's services are listed. */
  steps: Array<() => void>;
  /** The states of UpdateStatus the engine reported, in order (what the watch may have seen). */
  reported: string[];
  /** Replicas set by `docker service scale`; undefined: the files' (1), as a stack deploy sets again. */
  replicas?: number;
}

/**
 * Makapix's config with dev on a swarm (the fixture's dev files), the registry on loopback. The
 * watch gives up after 20s unless told otherwise: a deploy that never converges fails in seconds.
 */
export function swarmConfig(o: SwarmOptions = {}): Config {
  const onSwarm = `    target: swarm\n    health-timeout-seconds: ${o.healthTimeoutSeconds ?? 20}`;
  let base = fs
    .readFileSync(path.join(FIXTURES, 'config/makapix.yml'), 'utf8')
    .replace('compose-command: docker compose', 'compose-command: docker-compose')
    .replace('vault: /mnt/vault-dev', `vault: /mnt/vault-dev\n${onSwarm}`);
  if (o.prodOnSwarm) base = base.replace('vault: /mnt/vault-1', `vault: /mnt/vault-1\n${onSwarm}`);
  return parseConfig(
    `${base}\n${o.extra ?? ''}\nswarm:\n  registry: ${REGISTRY}\n  allow-shared-node: true\npreflight:\n  dev-paths: [/var/log/caddy]\n`,
    'makapix.yml',
  );
}

export interface SwarmOptions {
  healthTimeoutSeconds?: number;
  /** prod is a stack on the same one-node swarm (PROD_STACK), from the fixture's prod files. */
  prodOnSwarm?: boolean;
  /** Text added to the config (before swarm:). */
  extra?: string;
  /** Build args prod's merged configuration gives the api (a per-environment build, as Makapix's NEXT_PUBLIC_API_BASE_URL). */
  prodApiBuildArgs?: Record<string, string>;
}

const hash = (text: string) => createHash('sha256').update(text).digest('hex');
/** The repository of an image name (without tag or digest). */
const repoOf = (image: string) => {
  const name = image.split('@')[0];
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? name.slice(0, colon) : name;
};

export class FakeSwarm extends FakeVps {
  /** Image id → the `repo@sha256:…` names it has (docker image inspect's RepoDigests). */
  readonly repoDigests = new Map<string, string[]>();
  /** What the registry holds: `repo:tag` → digest. */
  readonly registry = new Map<string, string>();
  /** Each stack as the engine keeps it: dev's, and prod's with `prodOnSwarm`. */
  readonly stacks = new Map<string, Map<string, FakeService>>([[STACK, new Map()]]);
  /** dev's stack. */
  readonly stack = this.stacks.get(STACK) as Map<string, FakeService>;
  readonly tasks: FakeTask[] = [];
  /** How the engine's update of a service to an image turns out (default: it converges). */
  outcome: (service: string, image: string, stack: string) => Outcome = () => 'converge';
  /** Whether the worker's image was pulled (so the manager knows its digest). */
  pulled = true;
  /** The image id each prod `compose build` gave a service (a rebuild for prod). */
  readonly prodBuilt = new Map<string, string>();
  private serial = 0;
  private readonly prodConfig: string;
  /** prod's image name of each service (its own tag for the built ones). */
  private readonly prodImages: Record<string, string>;

  constructor(o: SwarmOptions = {}) {
    super(swarmConfig(o));
    this.host.files.set(`${this.env.dev.checkout}/${this.config.environments.dev.envFile}`, fs.readFileSync(path.join(SWARM_DIR, 'stack/.env.dev')));
    const prod = JSON.parse(PROD_CONFIG) as { services: Record<string, { image: string; build?: { args?: Record<string, string> } }> };
    this.prodImages = Object.fromEntries(Object.entries(prod.services).map(([service, x]) => [service, x.image]));
    if (o.prodApiBuildArgs) prod.services.api.build = { ...prod.services.api.build, args: o.prodApiBuildArgs };
    this.prodConfig = JSON.stringify(prod);
    if (o.prodOnSwarm) {
      this.stacks.set(PROD_STACK, new Map());
      this.host.files.set(`${this.env.prod.checkout}/${this.config.environments.prod.envFile}`, fs.readFileSync(path.join(SWARM_DIR, 'stack/.env.prod')));
    }
    this.installSwarm();
    this.installScaleAndRestore();
    this.installOneOffJobs();
  }

  /** The digest name (`repo@sha256:…`) an image has in its own repository, once pushed or pulled. */
  digestName(ref: string): string | undefined {
    const id = this.images.get(ref);
    return id ? this.repoDigests.get(id)?.find((d) => d.startsWith(`${repoOf(ref)}@`)) : undefined;
  }

  /**
   * An environment runs a swarm release of `commit` (dev unless said): its images built and pushed
   * (the worker's pulled, unless `pulled` is false), the release recorded with its digests, every
   * service one running task.
   */
  runSwarmRelease(commit: string, release: string, name: EnvironmentName = 'dev'): Record<string, string> {
    const stack = this.stackOf(name);
    const digests: Record<string, string> = {};
    const images: Record<string, { name: string; id: string; tag: string }> = {};
    const unpinned: string[] = [];
    for (const s of SWARM_SERVICES) {
      const id = s.build ? imageId(`${s.service}@${commit}`) : imageId(`${s.service}-base`);
      this.images.set(s.image, id);
      this.images.set(id, id);
      if (s.build) {
        const tag = `${repoOf(s.image)}:${release}`;
        this.images.set(tag, id);
        digests[s.service] = this.pushed(tag);
        images[s.service] = { name: digests[s.service], id, tag };
      } else if (this.pulled) {
        digests[s.service] = this.pushed(s.image);
        images[s.service] = { name: digests[s.service], id, tag: digests[s.service] };
      } else {
        unpinned.push(s.service);
        images[s.service] = { name: s.image, id, tag: s.image };
      }
      this.stacks.get(stack)?.set(s.service, this.service(stack, s.service, digests[s.service] ?? s.image));
      this.tasks.unshift(this.task(stack, s.service, digests[s.service] ?? s.image, 'Running', 'Running 2 hours ago'));
    }
    this.commit(commit);
    this.env[name].head = commit;
    this.log(name, {
      event: 'release',
      action: 'deploy',
      release,
      sha: commit,
      kind: 'deploy',
      images,
      digests,
      unpinned: unpinned.length ? unpinned : undefined,
    });
    return digests;
  }

  /** The image a service's spec names now (dev's stack unless said). */
  specImage(service: string, name: EnvironmentName = 'dev'): string | undefined {
    return this.stacks.get(this.stackOf(name))?.get(service)?.image;
  }

  /** The images a service's running tasks were given (dev's stack unless said). */
  runningImages(service: string, name: EnvironmentName = 'dev'): string[] {
    const stack = this.stackOf(name);
    return this.tasks
      .filter((t) => t.Name.startsWith(`${stack}_${service}.`) && t.DesiredState === 'Running' && t.CurrentState.startsWith('Running'))
      .map((t) => t.Image);
  }

  private stackOf(name: EnvironmentName): string {
    return name === 'dev' ? STACK : PROD_STACK;
  }

  /** The ref as pushed to (or pulled from) the registry: it gets a digest there, which the image then carries. */
  private pushed(ref: string): string {
    const id = this.images.get(ref) as string;
    const repo = repoOf(ref);
    const digest = `sha256:${hash(`${repo}|${id}`)}`;
    this.registry.set(ref, digest);
    const name = `${repo}@${digest}`;
    this.repoDigests.set(id, [...new Set([...(this.repoDigests.get(id) ?? []), name])]);
    this.images.set(name, id);
    return name;
  }

  private service(stack: string, service: string, image: string): FakeService {
    // dev's ids as they always were; prod's differ from them.
    const id = `svc${stack === STACK ? '' : 'p'}${service}`.padEnd(25, '0');
    return { service, id, image, steps: [], reported: [] };
  }

  private task(stack: string, service: string, image: string, desired: string, state: string, error = '', slot = 1): FakeTask {
    const id = `task${String(++this.serial).padStart(4, '0')}${hash(`${service}${this.serial}`).slice(0, 17)}`;
    return { ID: id, Name: `${stack}_${service}.${slot}`, Image: image, Node: NODE, DesiredState: desired, CurrentState: state, Error: error };
  }

  /** `docker stack deploy`: each service the files name gets the image they name now; one that changes starts an update. */
  private deployStack(call: Call): Reply {
    const words = shellWords(/set -- ([^\n]*)\n/.exec(call.script)?.[1] ?? '');
    const dir = /^DIR=(\S+);/.exec(call.script)?.[1] ?? '';
    const stack = words.at(-1) ?? '';
    const services = this.stacks.get(stack);
    if (!services) return { exitCode: 1, stderr: `the fake swarm has no stack ${stack}` };
    const files = words.flatMap((w, i) => (words[i - 1] === '-c' ? [w] : []));
    const overlay: Record<string, string> = {};
    for (const f of files.filter((x) => x.endsWith('.twinstack-digests.yml'))) {
      const text = this.host.files.get(path.posix.join(dir, f))?.toString();
      if (!text) return { exitCode: 1, stderr: `open ${f}: no such file or directory` };
      const parsed = JSON.parse(text) as { services: Record<string, { image: string }> };
      for (const [s, v] of Object.entries(parsed.services)) overlay[s] = v.image;
    }
    for (const s of SWARM_SERVICES) {
      const image = overlay[s.service] ?? s.image;
      const svc = services.get(s.service);
      if (!svc) {
        services.set(s.service, this.service(stack, s.service, image));
        this.tasks.unshift(this.task(stack, s.service, image, 'Running', 'Running 1 second ago'));
      } else {
        // The files' replicas come back with the deploy (after a scale to 0, a task starts on the same image).
        const scaledDown = svc.replicas === 0;
        svc.replicas = undefined;
        if (svc.image !== image) this.update(stack, svc, image);
        else if (scaledDown) this.tasks.unshift(this.task(stack, s.service, image, 'Running', 'Running 1 second ago'));
      }
    }
    return { stdout: `Updating service ${stack}_api (id: svcapi)\n` };
  }

  /** The engine's rolling update of one service (stop-first), as the outcome says it ends. */
  private update(stack: string, svc: FakeService, image: string): void {
    const before = svc.image;
    const startedAt = `2026-12-05T04:00:${String(++this.serial).padStart(2, '0')}Z`;
    const old = this.tasks.filter((t) => t.Name === `${stack}_${svc.service}.1` && t.DesiredState === 'Running');
    let fresh: FakeTask | undefined;
    svc.image = image;
    const outcome = this.outcome(svc.service, image, stack);
    svc.steps = [
      () => {
        svc.update = { State: 'updating', Message: 'update in progress', StartedAt: startedAt };
        for (const t of old) Object.assign(t, { DesiredState: 'Shutdown', CurrentState: 'Running 1 second ago' });
        fresh = this.task(stack, svc.service, image, 'Running', 'Starting 1 second ago');
        this.tasks.unshift(fresh);
      },
    ];
    if (outcome === 'converge')
      svc.steps.push(() => {
        svc.update = { State: 'completed', Message: 'update completed', StartedAt: startedAt };
        for (const t of old) t.CurrentState = 'Shutdown 1 second ago';
        if (fresh) fresh.CurrentState = 'Running 1 second ago';
      });
    if (outcome === 'rollback')
      svc.steps.push(() => {
        svc.update = { State: 'rollback_completed', Message: 'rollback completed', StartedAt: startedAt };
        svc.image = before;
        for (const t of old) t.CurrentState = 'Shutdown 3 seconds ago';
        if (fresh)
          Object.assign(fresh, {
            DesiredState: 'Shutdown',
            CurrentState: 'Failed 2 seconds ago',
            Error: 'task: non-zero exit (1): dockerexec: unhealthy container',
          });
        this.tasks.unshift(this.task(stack, svc.service, before, 'Running', 'Running 1 second ago'));
      });
    // 'stuck': the new task never gets healthy, the update stays in progress.
  }

  /** A stack's services are listed: the engine's updates move one step. */
  private advance(stack: string): void {
    for (const svc of this.stacks.get(stack)?.values() ?? []) {
      svc.steps.shift()?.();
      if (svc.update && svc.reported.at(-1) !== svc.update.State) svc.reported.push(svc.update.State);
    }
  }

  private serviceInspect(names: string[]): string {
    const wanted = [...this.stacks].flatMap(([stack, services]) =>
      [...services.values()].filter((s) => names.includes(`${stack}_${s.service}`) || names.includes(s.id)).map((s) => ({ stack, s })),
    );
    return JSON.stringify(
      wanted.map(({ stack, s }) => ({
        ID: s.id,
        Spec: {
          Name: `${stack}_${s.service}`,
          Labels: { 'com.docker.stack.namespace': stack },
          TaskTemplate: { ContainerSpec: { Image: s.image } },
          Mode: { Replicated: { Replicas: s.replicas ?? 1 } },
        },
        ...(s.update ? { UpdateStatus: s.update } : {}),
      })),
    );
  }

  private serviceTasks(names: string[]): string {
    const wanted = [...this.stacks].flatMap(([stack, services]) =>
      [...services.values()].filter((s) => names.includes(`${stack}_${s.service}`) || names.includes(s.id)).map((s) => `${stack}_${s.service}.`),
    );
    return this.tasks
      .filter((t) => wanted.some((w) => t.Name.startsWith(w)))
      .map((t) => `${JSON.stringify(t)}\n`)
      .join('');
  }

  /** `docker inspect` of a stack's running tasks' containers (one node: all of them are the manager's). */
  private taskContainers(stack: string): string {
    const live = this.tasks.filter((t) => t.Name.startsWith(`${stack}_`) && t.DesiredState === 'Running' && t.CurrentState.startsWith('Running'));
    return JSON.stringify(
      live.map((t) => {
        const service = t.Name.slice(stack.length + 1, -2);
        return {
          Id: t.ID.padEnd(64, '0'),
          Name: `/${t.Name}.${t.ID}`,
          Image: this.images.get(t.Image) ?? imageId(t.Image),
          Config: {
            Image: t.Image,
            Labels: { 'com.docker.stack.namespace': stack, 'com.docker.swarm.service.name': `${stack}_${service}`, 'com.docker.swarm.task.id': t.ID },
          },
          State: { Status: 'running', ExitCode: 0, StartedAt: '' },
        };
      }),
    );
  }

  private installSwarm(): void {
    const h = this.host;
    const stacks = `(${[...this.stacks.keys()].join('|')})`;
    const ids = (stack: string) => [...(this.stacks.get(stack)?.values() ?? [])].map((s) => s.id);
    const envOf = (stack: string) => (stack === STACK ? this.env.dev : this.env.prod);

    // dev's compose, on the manager: its merged configuration (the converted stack) and the build.
    h.on('dev compose (swarm)', /^docker-compose (?:-f \S+ )+--env-file \S+ -p makapix-dev (config|build)$/, (c, m) => {
      if (m?.[1] === 'config') return { stdout: configIn(DEV_CONFIG, c.cwd ?? this.env.dev.checkout) };
      for (const s of SWARM_SERVICES.filter((x) => x.build)) {
        const id = this.built(this.env.dev.head, s.service);
        this.images.set(s.image, id);
        this.images.set(id, id);
      }
      return {};
    });
    // prod's, with prodOnSwarm: a build is promote's rebuild of the services it names.
    if (this.stacks.has(PROD_STACK))
      h.on('prod compose (swarm)', /^docker-compose (?:-f \S+ )+--env-file \S+ -p makapix-prod (config|build)((?: \w+)*)$/, (c, m) => {
        if (m?.[1] === 'config') return { stdout: configIn(this.prodConfig, c.cwd ?? this.env.prod.checkout) };
        const named = shellWords(m?.[2] ?? '');
        for (const s of SWARM_SERVICES.filter((x) => x.build && (named.length === 0 || named.includes(x.service)))) {
          const id = imageId(`${s.service} built for prod ${++this.serial}`);
          this.prodBuilt.set(s.service, id);
          this.images.set(this.prodImages[s.service], id);
          this.images.set(id, id);
        }
        return {};
      });
    // The registry (src/infra/swarm.ts: tagForRegistry, push, repoDigests).
    h.on('docker tag (registry)', /^docker tag (\S+) (\S+)$/, (_c, m) => {
      const id = this.images.get(m?.[1] ?? '');
      if (!id) return { exitCode: 1, stderr: `Error response from daemon: No such image: ${m?.[1]}` };
      this.images.set(m?.[2] ?? '', id);
      return {};
    });
    h.on('docker push', /^docker push (\S+)$/, (_c, m) => {
      if (!this.images.has(m?.[1] ?? '')) return { exitCode: 1, stderr: `An image does not exist locally with the tag: ${m?.[1]}` };
      const name = this.pushed(m?.[1] ?? '');
      return { stdout: `latest: digest: ${name.slice(name.indexOf('@') + 1)} size: 1234\n` };
    });
    h.on('repo digests', /^docker image inspect --format '\{\{json \.RepoDigests\}\}' (\S+)$/, (_c, m) => {
      const id = this.images.get(m?.[1] ?? '');
      if (!id) return { exitCode: 1, stderr: `Error: No such image: ${m?.[1]}` };
      return { stdout: `${JSON.stringify(this.repoDigests.get(id) ?? [])}\n` };
    });
    // The swarm's one node, labelled for both environments (swarm.allow-shared-node).
    h.on('node inspect', /^ids=\$\(docker node ls -q\)/, {
      stdout: JSON.stringify([
        {
          ID: NODE_ID,
          Spec: { Labels: { 'twinstack.env.prod': 'true', 'twinstack.env.dev': 'true' }, Role: 'manager', Availability: 'active' },
          Description: { Hostname: NODE },
          Status: { State: 'ready', Addr: '10.0.0.1' },
        },
      ]),
    });
    // The stacks (src/infra/swarm.ts: stackDeploy, serviceList, serviceInspect, serviceTasks).
    h.on('stack deploy', /^DIR=\S+; set -- docker stack deploy /, (c) => this.deployStack(c));
    h.on('service ls', new RegExp(`^docker service ls --filter label=com\\.docker\\.stack\\.namespace=${stacks} --format json$`), (_c, m) => {
      const stack = m?.[1] ?? '';
      this.advance(stack);
      return {
        stdout: [...(this.stacks.get(stack)?.values() ?? [])]
          .map(
            (s) =>
              `${JSON.stringify({ ID: s.id, Name: `${stack}_${s.service}`, Mode: 'replicated', Replicas: `${this.runningImages(s.service, stack === STACK ? 'dev' : 'prod').length}/${s.replicas ?? 1}`, Image: s.image })}
`,
          )
          .join(''),
      };
    });
    h.on('service inspect', /^docker service inspect (.+)$/, (_c, m) => ({ stdout: this.serviceInspect(shellWords(m?.[1] ?? '')) }));
    h.on('service ps', /^docker service ps --no-trunc --format json (.+)$/, (_c, m) => ({ stdout: this.serviceTasks(shellWords(m?.[1] ?? '')) }));
    // What a stack runs in one round trip (src/domain/observe-stack.sh), and its task containers.
    h.on('observe stack', new RegExp(`^CHECKOUT=\\S+; SEP=@twinstack-state@; STACK_FILTER=label=com\\.docker\\.stack\\.namespace=${stacks}\\n`), (_c, m) => {
      const stack = m?.[1] ?? '';
      return {
        stdout: [
          `${envOf(stack).head}\n`,
          `${this.serviceInspect(ids(stack))}\n`,
          this.serviceTasks(ids(stack)),
          `${this.taskContainers(stack)}\n`,
          `${NODE}\n`,
        ].join('@twinstack-state@\n'),
      };
    });
    h.on(
      'list task containers',
      new RegExp(`^PROJECT_LABEL=label=com\\.docker\\.stack\\.namespace=${stacks}; SERVICE_LABEL=''; DOCKER_ENDPOINT=''\\n`),
      (_c, m) => ({
        stdout: this.taskContainers(m?.[1] ?? ''),
      }),
    );
    // The nodes of a stack's tasks (src/infra/stack-nodes.sh): the one node, the manager.
    h.on('stack nodes', new RegExp(`^STACK=${stacks}\\nhere=\\$\\(docker node inspect self`), { stdout: `${NODE}\n${NODE}\n` });
  }

  // ── Scaling, and dev's database restored in its db task (rollback with restore-database) ──

  /** The `docker service scale` calls, in order: service → replicas. */
  readonly scales: Array<Record<string, number>> = [];
  /** dev's restores: the backup, and what each app service ran (running tasks) while the restore ran. */
  readonly restores: Array<{ backup: string; appTasks: Record<string, number> }> = [];

  /** A verified backup of dev on disk, as the backup action leaves it (its checksums match what the fake answers). */
  putDevBackup(id: string, time: Date): this {
    const manifest = {
      id,
      env: 'dev',
      status: 'verified',
      time: time.toISOString(),
      finishedAt: time.toISOString(),
      database: this.config.environments.dev.database.name,
      files: { 'db.dump': { bytes: 1024, sha256: 'd'.repeat(64) }, 'globals.sql': { bytes: 64, sha256: 'e'.repeat(64) } },
      durationSeconds: 10,
      timings: { dump: 8, globals: 1, verify: 1 },
      tools: {},
      verification: { method: 'list', ok: true, detail: 'pg_restore --list read the dump; checksum matches' },
    };
    this.host.files.set(`${this.config.backup.dir}/dev/${id}/manifest.json`, Buffer.from(JSON.stringify(manifest)));
    return this;
  }

  private installScaleAndRestore(): void {
    const h = this.host;
    // `docker service scale --detach=false <stack>_<service>=<n> ...`: at 0 the service's tasks stop (the engine waited).
    h.on('service scale', /^docker service scale --detach=(?:true|false) ((?:\S+=\d+ ?)+)$/, (_c, m) => {
      const wanted: Record<string, number> = {};
      for (const pair of shellWords(m?.[1] ?? '')) {
        const [name, n] = pair.split('=');
        const stack = [...this.stacks.keys()].find((k) => name.startsWith(`${k}_`)) ?? '';
        const svc = this.stacks.get(stack)?.get(name.slice(stack.length + 1));
        if (!svc) return { exitCode: 1, stderr: `service ${name} not found` };
        wanted[name.slice(stack === STACK ? STACK.length + 1 : 0)] = Number(n);
        svc.replicas = Number(n);
        const live = this.tasks.filter((x) => x.Name.startsWith(`${name}.`) && x.DesiredState === 'Running');
        if (Number(n) === 0) for (const t of live) Object.assign(t, { DesiredState: 'Shutdown', CurrentState: 'Shutdown 1 second ago' });
        // Scaled up: new tasks on the spec's image in the slots not running yet (they run once the engine waited).
        for (let slot = live.length + 1; slot <= Number(n); slot++)
          this.tasks.unshift(this.task(stack, svc.service, svc.image, 'Running', 'Running 1 second ago', '', slot));
      }
      this.scales.push(wanted);
      return {
        stdout: Object.keys(wanted)
          .map((n) => `${n.includes('_') ? n : `${STACK}_${n}`} scaled to ${wanted[n]}\n`)
          .join(''),
      };
    });
    // dev's db tools run in the db task's container (src/infra/task-container.sh in front).
    const devDb = (re: RegExp) => (s: string) => s.startsWith(`{ c=$(STACK_FILTER=label=com.docker.stack.namespace=${STACK};`) && re.test(s);
    h.on('pg_restore --list (dev task)', devDb(/pg_restore .*--list/), {});
    // Database-level SQL on dev's maintenance database in the db task (resample's swap), as FakeVps answers it on compose.
    const onDevServer = (re: RegExp) => (s: string, c: Call) => devDb(/ psql .* -f -/)(s) && re.test(c.stdin ?? '');
    h.on('list dev databases (dev task)', onDevServer(/json_agg\(datname ORDER BY datname\)/), () => ({
      stdout: JSON.stringify([...this.databases.dev].sort()),
    }));
    h.on('rename dev database (dev task)', onDevServer(/ALTER DATABASE "?\w+"? RENAME TO "?\w+"?;/), (c) => {
      for (const m of (c.stdin ?? '').matchAll(/ALTER DATABASE "?(\w+)"? RENAME TO "?(\w+)"?;/g)) {
        if (!this.databases.dev.has(m[1]) || this.databases.dev.has(m[2])) return { exitCode: 1, stderr: `ERROR:  cannot rename ${m[1]} to ${m[2]}` };
        this.databases.dev.delete(m[1]);
        this.databases.dev.add(m[2]);
      }
      return {};
    });
    h.on('drop dev database (dev task)', onDevServer(/DROP DATABASE IF EXISTS "?\w+"?;/), (c) => {
      this.databases.dev.delete(/DROP DATABASE IF EXISTS "?(\w+)"?;/.exec(c.stdin ?? '')?.[1] ?? '');
      return {};
    });
    h.on('restore dev database', /^PENDING_DIR=\S+\/dev\/pending; .*pg_restore .*--single-transaction/s, (c) => {
      const appTasks = Object.fromEntries(SWARM_SERVICES.filter((s) => s.service !== 'db').map((s) => [s.service, this.runningImages(s.service).length]));
      this.restores.push({ backup: /restore of dev from (\S+),/.exec(c.script)?.[1] ?? '', appTasks });
      return {};
    });
  }

  // ── One-off jobs (src/domain/swarm-oneoff.ts): alembic in a replicated job of the new api image ──

  /** Every one-off job created: its name, image and command. */
  readonly jobs: Array<{ name: string; image: string; command: string[] }> = [];
  /** How a job ends, by what follows `<stack>_twinstack-` in its name (default: heads answers, upgrade migrates prod). */
  readonly jobOutcome = new Map<string, (job: { stack: string; command: string[] }) => { exitCode: number; output: string }>();
  private readonly jobEnded = new Map<string, { exitCode: number; output: string }>();

  private runJob(name: string, image: string, command: string[]): { exitCode: number; output: string } {
    const stack = name.slice(0, name.indexOf('_twinstack-'));
    const what = name.slice(stack.length + '_twinstack-'.length);
    this.jobs.push({ name, image, command });
    const custom = this.jobOutcome.get(what);
    if (custom) return custom({ stack, command });
    const alembic = command.slice(command.indexOf('alembic') + 1).join(' ');
    if (alembic === 'heads') return { exitCode: 0, output: this.newHeads.map((x) => `${x} (head)`).join('\n') + '\n' };
    if (alembic === 'upgrade head') {
      // The rehearsal migrates a copy, never prod's database.
      if (stack === PROD_STACK && what === 'migrate') this.schema = { ...this.migratedSchema };
      return { exitCode: 0, output: '' };
    }
    return { exitCode: 2, output: `the fake knows no alembic ${alembic}` };
  }

  private installOneOffJobs(): void {
    const h = this.host;
    h.on('remove one-off job', /^SERVICE=\S+_twinstack-[\w-]+\ntasks=\$\(docker service ps/, {});
    h.on('one-off env dir', /^mktemp -d -t twinstack-oneoff\.X+$/, { stdout: '/tmp/twinstack-oneoff.fake0001\n' });
    h.on('remove one-off env dir', /^rm -rf -- \/tmp\/twinstack-oneoff\.fake0001$/, {});
    h.on('create one-off job', /^docker service create --quiet --mode replicated-job /, (c) => {
      const words = shellWords(c.script);
      const name = words[words.indexOf('--name') + 1];
      const image = words.find((w) => /@sha256:/.test(w)) ?? '';
      const command = words.slice(words.indexOf(image) + 1);
      this.jobEnded.set(name, this.runJob(name, image, command));
      return { stdout: `job${name}\n` };
    });
    h.on('wait for one-off job', /^SERVICE=(\S+)\nwhile :; do/, (_c, m) => ({ stdout: `jobtask-${m?.[1]}\n` }));
    h.on('one-off job output', /^docker service logs --raw --no-trunc (\S+)$/, (_c, m) => ({ stdout: this.jobEnded.get(m?.[1] ?? '')?.output ?? '' }));
    h.on('one-off task', /^docker inspect --type task jobtask-(\S+)$/, (_c, m) => {
      const ended = this.jobEnded.get(m?.[1] ?? '');
      const state = ended?.exitCode === 0 ? 'complete' : 'failed';
      return { stdout: JSON.stringify([{ ID: `jobtask-${m?.[1]}`, Status: { State: state, Err: '', ContainerStatus: { ExitCode: ended?.exitCode ?? 1 } } }]) };
    });
  }
}
