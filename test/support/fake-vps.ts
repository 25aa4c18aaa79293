/**
 * The Makapix VPS as the orchestration tests see it: a FakeHost with rules that keep a small model
 * of the host (each environment's checkout HEAD and containers, the image tags, prod's schema, the
 * host logs and lock files) and answer the commands twinstack sends from it. A command changes the
 * model as it would change the host (`compose up` starts the images the names point at, `git
 * checkout` moves HEAD, a migration moves the schema), so a later `docker inspect` sees what an
 * earlier command did. A test adds a rule over these to take a branch (a failed migration, an
 * unhealthy service) and asserts on the recorded commands and on the model.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfig, type Config, type EnvironmentName } from '../../src/domain/config';
import { latest, type LogEvent, type LogRecord, type RecordOf } from '../../src/domain/host-log';
import { FakeHost, shellWords, type Call, type Reply } from './fake-host';

const FIXTURES = path.join(__dirname, '../fixtures');
const read = (p: string) => fs.readFileSync(path.join(FIXTURES, p), 'utf8');

/** A commit sha made of one repeated hex digit: sha('a') = 'aaaa…' (40). */
export const sha = (c: string): string => c.repeat(40);
/** An image id: sha256: and a hash of a word. */
export const imageId = (word: string): string => `sha256:${createHash('sha256').update(word).digest('hex')}`;

/** Makapix's config as the fixtures of preflight's unit tests have it, compose v1 (its captured `config` output). */
export function fakeConfig(extra = ''): Config {
  const base = read('config/makapix.yml').replace('compose-command: docker compose', 'compose-command: docker-compose');
  return parseConfig(`${base}${extra}\npreflight:\n  dev-paths: [/var/log/caddy]\n`, 'makapix.yml');
}

export interface FakeContainer {
  id: string;
  service: string;
  /** The image name it was started from. */
  image: string;
  imageId: string;
  status: 'running' | 'exited' | 'restarting';
  health: 'healthy' | 'unhealthy' | 'starting';
  exitCode: number;
  workingDir: string;
}

export interface FakeEnvironment {
  checkout: string;
  project: string;
  head: string;
  containers: FakeContainer[];
  /** The host log records, one JSON line each (kept in the host's files map). */
  logFile: string;
}

export interface Schema {
  revision: string;
  tables: string;
}

const COMPOSE_CONFIG: Record<EnvironmentName, string> = { prod: read('preflight/config/prod.v1.yml'), dev: read('preflight/config/dev.v1.yml') };
/** Each service and its image name, from the merged compose configuration (the same in both environments). */
export const SERVICES: Array<{ service: string; image: string }> = [
  { service: 'api', image: 'makapix-api:local' },
  { service: 'cache', image: 'redis:7-alpine' },
  { service: 'caddy', image: 'lucaslorentz/caddy-docker-proxy:2.8' },
  { service: 'db', image: 'postgres:17-alpine' },
  { service: 'mqtt', image: 'eclipse-mosquitto:2' },
  { service: 'web', image: 'makapix-web:local' },
  { service: 'worker', image: 'makapix-worker:local' },
];

export class FakeVps {
  readonly host = new FakeHost();
  readonly config: Config;
  readonly env: Record<EnvironmentName, FakeEnvironment>;
  /** Image reference (name:tag or id) → image id. */
  readonly images = new Map<string, string>();
  /** Commits the remote has, and those on promote.branch. */
  readonly commits = new Set<string>();
  readonly onBranch = new Set<string>();
  /** prod's database: its alembic revision and its tables (what the schema dump shows). */
  schema: Schema = { revision: 'r1', tables: 'CREATE TABLE users (id int);' };
  /** The databases on each environment's server (resample's swap renames and drops them). */
  readonly databases: Record<EnvironmentName, Set<string>> = { prod: new Set(['postgres', 'makapix']), dev: new Set(['postgres', 'makapix_dev']) };
  /** What the rehearsal's pg_locks sampler prints: `<epoch ms>` or `<epoch ms>|<table>` per line. */
  lockSamples = '1000\n1100\n';
  /** What the backup taken by this run holds. */
  backupSchema?: Schema;
  /** The head revision(s) of the new code's migrations, and what `upgrade head` makes of the schema. */
  newHeads = ['r1'];
  migratedSchema: Schema = { revision: 'r2', tables: 'CREATE TABLE users (id int, name text);' };
  /** How a started container of an image turns out (default: running and healthy). */
  health: (env: EnvironmentName, service: string, imageId: string) => Pick<FakeContainer, 'status' | 'health' | 'exitCode'> = () => ({
    status: 'running',
    health: 'healthy',
    exitCode: 0,
  });
  /** What each commit's build produces, per service (deploy's `compose build`). */
  built = (commit: string, service: string): string => imageId(`${service}@${commit}`);
  private nextContainer = 1;

  /** `extraConfig`: text added to the fixture's config, or a whole config (a swarm target: test/support/fake-swarm.ts). */
  constructor(extraConfig: string | Config = '') {
    this.config = typeof extraConfig === 'string' ? fakeConfig(extraConfig) : extraConfig;
    const c = this.config;
    const envOf = (name: EnvironmentName): FakeEnvironment => ({
      checkout: c.environments[name].checkout,
      project: c.environments[name].project,
      head: '',
      containers: [],
      logFile: `${c['state-dir']}/${name}/log.jsonl`,
    });
    this.env = { prod: envOf('prod'), dev: envOf('dev') };
    // The env files preflight reads (from the checkouts; promote's scratch checkouts get copies).
    this.host.files.set(`${c.environments.prod.checkout}/${c.environments.prod.envFile}`, Buffer.from(read('preflight/stack/.env.prod')));
    this.host.files.set(`${c.environments.dev.checkout}/${c.environments.dev.envFile}`, Buffer.from(read('preflight/stack/.env.dev')));
    this.install();
  }

  // ── Setting the scene ──────────────────────────────────────────────────────────────────────

  /** Adds commits to the remote (on promote.branch unless said otherwise). */
  commit(...shas: string[]): this {
    for (const s of shas) {
      this.commits.add(s);
      this.onBranch.add(s);
    }
    return this;
  }

  /** Appends records to an environment's host log as twinstack writes them. */
  log(name: EnvironmentName, ...records: Array<Record<string, unknown>>): this {
    const file = this.env[name].logFile;
    const text = records.map((r) => JSON.stringify({ v: 1, time: new Date(Date.now() - 3600_000).toISOString(), env: name, action: 'test', op: 'o0', ...r }));
    this.host.files.set(file, Buffer.concat([this.host.files.get(file) ?? Buffer.alloc(0), Buffer.from(text.map((l) => `${l}\n`).join(''))]));
    return this;
  }

  /** The release records of an environment running `commit`, every service's image tagged for it; returns its images. */
  runRelease(
    name: EnvironmentName,
    commit: string,
    release: string,
    opts: { kind?: string; previous?: string; actor?: string; rolledBackFrom?: string; ids?: Record<string, string> } = {},
  ) {
    const e = this.env[name];
    const images: Record<string, { name: string; id: string; tag: string }> = {};
    for (const s of SERVICES) {
      const id = opts.ids?.[s.service] ?? imageId(`${s.service}@${commit}`);
      const tag = `twinstack/${e.project}-${s.service}:${release}`;
      images[s.service] = { name: s.image, id, tag };
      this.images.set(tag, id);
      this.images.set(id, id);
    }
    this.commit(commit);
    this.log(name, {
      event: 'release',
      action: opts.kind ?? 'deploy',
      release,
      sha: commit,
      kind: opts.kind ?? 'deploy',
      images,
      previous: opts.previous,
      actor: opts.actor,
      rolledBackFrom: opts.rolledBackFrom,
    });
    // It runs: the checkout is at the commit and every service runs its image.
    e.head = commit;
    e.containers = SERVICES.map((s) => this.container(name, s.service, s.image, images[s.service].id, e.checkout));
    if (name === 'prod') for (const s of SERVICES) this.images.set(s.image, images[s.service].id);
    return images;
  }

  /** A passing gate of `commit` on dev, with the image ids it tested. */
  gate(commit: string, images: Record<string, string>, passed = true): this {
    return this.log('dev', { event: 'gate', action: 'gate', sha: commit, passed, images });
  }

  /** A backup of prod on disk as the backup action leaves it (its manifest; the checksums the fake answers match it). */
  putBackup(id: string, time: Date, status: 'verified' | 'failed' = 'verified'): this {
    const manifest = {
      id,
      env: 'prod',
      status,
      time: time.toISOString(),
      finishedAt: time.toISOString(),
      database: 'makapix',
      files: { 'db.dump': { bytes: 1024, sha256: 'd'.repeat(64) }, 'globals.sql': { bytes: 64, sha256: 'e'.repeat(64) } },
      durationSeconds: 10,
      timings: { dump: 8, globals: 1, verify: 1 },
      tools: {},
      verification: { method: 'list', ok: status === 'verified', detail: 'pg_restore --list read the dump; checksum matches' },
    };
    this.host.files.set(`${this.config.backup.dir}/prod/${id}/manifest.json`, Buffer.from(JSON.stringify(manifest)));
    return this;
  }

  /** The records of an environment's host log now. */
  records(name: EnvironmentName): LogRecord[] {
    const text = this.host.files.get(this.env[name].logFile)?.toString() ?? '';
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as LogRecord);
  }

  /** The newest record of an event in an environment's host log. */
  last<E extends LogEvent>(name: EnvironmentName, event: E): RecordOf<E> | undefined {
    return latest(this.records(name), event);
  }

  /** Service → image id of the containers an environment runs. */
  running(name: EnvironmentName): Record<string, string> {
    return Object.fromEntries(this.env[name].containers.map((c) => [c.service, c.imageId]));
  }

  private container(name: EnvironmentName, service: string, image: string, id: string, workingDir: string): FakeContainer {
    const n = String(this.nextContainer++).padStart(12, '0');
    return { id: n, service, image, imageId: id, workingDir, ...this.health(name, service, id) };
  }

  /** The renames psql reads from standard input, in order; the first that fails stops the session (ON_ERROR_STOP). */
  private renames(c: Call): Reply {
    const dbs = this.databases[this.envNamed(c.script)];
    for (const m of (c.stdin ?? '').matchAll(/ALTER DATABASE "?(\w+)"? RENAME TO "?(\w+)"?;/g)) {
      if (!dbs.has(m[1])) return { exitCode: 1, stderr: `ERROR:  database "${m[1]}" does not exist` };
      if (dbs.has(m[2])) return { exitCode: 1, stderr: `ERROR:  database "${m[2]}" already exists` };
      dbs.delete(m[1]);
      dbs.add(m[2]);
    }
    return {};
  }

  private envNamed(text: string): EnvironmentName {
    return text.includes(this.env.dev.project) || text.includes(this.env.dev.checkout + '/') || text.endsWith(this.env.dev.checkout) ? 'dev' : 'prod';
  }

  private inspect(name: EnvironmentName): string {
    const e = this.env[name];
    return JSON.stringify(
      e.containers.map((c) => ({
        Id: c.id.padEnd(64, '0'),
        Name: `/${e.project}_${c.service}_1`,
        Image: c.imageId,
        Config: {
          Image: c.image,
          Labels: {
            'com.docker.compose.project': e.project,
            'com.docker.compose.service': c.service,
            'com.docker.compose.project.working_dir': c.workingDir,
          },
          Healthcheck: { Test: ['CMD', 'true'] },
        },
        State: { Status: c.status, ExitCode: c.exitCode, StartedAt: '', Health: { Status: c.health } },
      })),
    );
  }

  private appendLog(call: Call): { stdout: string } {
    const m = /^DIR=\S+; LINE=(.*); FILE=(\S+)\n/.exec(call.script) as RegExpExecArray;
    const [line, file] = [shellWords(m[1])[0], shellWords(m[2])[0]];
    this.host.files.set(file, Buffer.concat([this.host.files.get(file) ?? Buffer.alloc(0), Buffer.from(`${line}\n`)]));
    return { stdout: '' };
  }

  /** compose up: every service (re)started from the image its name points at now. */
  private composeUp(name: EnvironmentName, cwd: string | undefined): void {
    const e = this.env[name];
    e.containers = SERVICES.map((s) => {
      const id = this.images.get(s.image);
      if (!id) throw new Error(`the fake has no image ${s.image} for ${name}'s ${s.service}`);
      return this.container(name, s.service, s.image, id, cwd ?? e.checkout);
    });
  }

  private dump(s: Schema): string {
    return `-- dump\nSET x = 1;\n${s.tables}\nINSERT alembic ${s.revision}\n`;
  }

  /** The rules every test starts from: a host on which everything works. */
  private install(): void {
    const h = this.host;
    const files = h.files;

    // The lock and the host log (src/domain/lock.ts, host-log.ts, operation.ts).
    h.on('mkdir', /^mkdir -p -m 700 \S+$/, {});
    h.on('read lock holder', /^FILE=(\S+lock-holder\.json)\n/, (_c, m) => ({ stdout: files.get(m?.[1] ?? '')?.toString() ?? '' }));
    h.on('take lock', /^DIR=\S+; LOCK_FILE=\S+\/lock; WAIT=\d+; TIMEOUT_EXIT=75; /, { stdout: 'twinstack-lock-acquired\n' });
    h.on('busy check', /^ENTRIES_DIR=\S+; BUSY_FILE=\S+\/busy\n/, { stdout: 'IDLE\n' });
    // Idle: the holder file as it was, then the new one in its place (src/domain/lock-claim.sh).
    h.on('claim lock', /^ENTRIES_DIR=\S+; BUSY_FILE=\S+\/busy; FILE=(\S+lock-holder\.json); TMP=\S+; MARKER=(\S+)\n/, (c, m) => {
      const was = files.get(m?.[1] ?? '')?.toString() ?? '';
      files.set(m?.[1] ?? '', Buffer.from(c.stdin ?? ''));
      return { stdout: `IDLE\n${m?.[2]}\n${was}` };
    });
    h.on('remove file', /^rm -f (\S+)$/, (_c, m) => {
      files.delete(m?.[1] ?? '');
      return {};
    });
    h.on('release lock', /^rm -f (\S+lock-holder\.json)$/, (_c, m) => {
      files.delete(m?.[1] ?? '');
      return {};
    });
    h.on('read host log', /^FILE=(\S+\/log\.jsonl); MAX_BYTES=\d+; TOO_BIG=\d+\n/, (_c, m) => ({ stdout: files.get(m?.[1] ?? '')?.toString() ?? '' }));
    h.on('host log append', /^DIR=\S+; LINE=.*; FILE=\S+\/log\.jsonl\n/, (c) => this.appendLog(c));
    h.on('cut host changes', /^PENDING_DIR=\S+\/pending\n/, {});

    // What runs (src/domain/state.ts, environment.ts).
    h.on('observe', /@twinstack-state@/, (c) => {
      const name = this.envNamed(c.script);
      return { stdout: `${this.env[name].head}\n@twinstack-state@\n${this.inspect(name)}\n@twinstack-state@\n` };
    });
    h.on('list containers', /^PROJECT_LABEL=label=com\.docker\.compose\.project=(\S+); SERVICE_LABEL=''; DOCKER_ENDPOINT=''\n/, (c) => ({
      stdout: this.inspect(this.envNamed(c.script)),
    }));
    h.on(
      'find service container',
      /^docker ps -q --filter label=com\.docker\.compose\.project=(\S+) --filter label=com\.docker\.compose\.service=(\S+)$/,
      (c, m) => {
        const x = this.env[this.envNamed(c.script)].containers.find((k) => k.service === m?.[2] && k.status === 'running');
        return { stdout: x ? `${x.id}\n` : '' };
      },
    );
    h.on(
      'settle recreate',
      /^PROJECT_LABEL=label=com\.docker\.compose\.project=\S+\ndocker ps -a --filter "\$PROJECT_LABEL" --format '\{\{\.ID\}\} \{\{\.Names\}\}' \| while /,
      {},
    );
    h.on('container logs', /^docker logs --tail \d+ (\S+) 2>&1$/, { stdout: 'Traceback (most recent call last):\nRuntimeError: the fake says no\n' });

    // git (src/domain/git.ts).
    h.on('is a repository', /^test -d \S+\/\.git$/, {});
    h.on('git fetch', /^git fetch --prune --tags --force \S+$/, {});
    h.on('resolve ref', /^REMOTE=\S+; REF=(\S+)\ngit rev-parse --verify --quiet "refs\/remotes\/\$REMOTE\/\$REF\^\{commit\}"/, (_c, m) => {
      const ref = shellWords(m?.[1] ?? '')[0] ?? '';
      const full = [...this.commits].find((s) => s === ref || (ref.length >= 7 && s.startsWith(ref)));
      return full ? { stdout: `${full}\n` } : { exitCode: 1 };
    });
    h.on('has commit', /^git cat-file -e '([0-9a-f]+)\^\{commit\}'$/, (_c, m) => (this.commits.has(m?.[1] ?? '') ? {} : { exitCode: 1 }));
    h.on('on branch', /^git for-each-ref --contains ([0-9a-f]{40}) /, (_c, m) => ({ stdout: this.onBranch.has(m?.[1] ?? '') ? 'main\n' : '' }));
    h.on('git checkout', /^git -c advice\.detachedHead=false checkout --quiet --detach ([0-9a-f]{40})$/, (c, m) => {
      this.env[this.envNamed(c.cwd ?? '')].head = m?.[1] ?? '';
      return {};
    });
    h.on('scratch checkout', /^CHECKOUT=\S+; DIR=(\S+); PARENT=\S+; SHA=[0-9a-f]{40}\n.*worktree add/s, {});
    h.on('copy files outside git', /^LINK=\S+; set -- (.*)\n/, (_c, m) => {
      const words = shellWords(m?.[1] ?? '');
      const copies = words.slice(words.indexOf('--') + 1);
      for (let i = 0; i + 2 < copies.length; i += 3) {
        const f = files.get(copies[i]);
        if (f) files.set(copies[i + 1], f);
      }
      return {};
    });
    h.on('remove scratch checkout', /^CHECKOUT=\S+; DIR=\S+\n.*worktree prune$/s, {});

    // compose (the fixture's merged configurations; up starts what the image names point at).
    h.on('compose', /^docker-compose (?:-f \S+ )+--env-file \S+ -p (\S+) (.*)$/s, (c, m) => {
      const name = this.envNamed(m?.[1] ?? '');
      const args = shellWords(m?.[2] ?? '');
      switch (args[0]) {
        case 'config':
          return { stdout: args[1] === '--services' ? SERVICES.map((s) => s.service).join('\n') + '\n' : COMPOSE_CONFIG[name] };
        case 'build':
          for (const s of SERVICES.filter((x) => x.image.endsWith(':local'))) {
            const id = this.built(this.env[name].head, s.service);
            this.images.set(s.image, id);
            this.images.set(id, id);
          }
          return {};
        case 'up':
          this.composeUp(name, c.cwd);
          return {};
        case 'stop':
          for (const k of this.env[name].containers) if (args.includes(k.service)) k.status = 'exited';
          return {};
        case 'start':
          for (const k of this.env[name].containers) if (args.includes(k.service)) Object.assign(k, this.health(name, k.service, k.imageId));
          return {};
        case 'run': {
          const alembic = args.slice(args.indexOf('alembic') + 1);
          if (alembic[0] === 'heads') return { stdout: this.newHeads.map((x) => `${x} (head)`).join('\n') + '\n' };
          // The rehearsal migrates a copy (its one-off container is named …-rehearse), never prod's database.
          const rehearsal = args[args.indexOf('--name') + 1]?.endsWith('-rehearse');
          if (alembic.join(' ') === 'upgrade head') {
            if (name === 'prod' && !rehearsal) this.schema = { ...this.migratedSchema };
            return {};
          }
          return { exitCode: 2, stderr: `the fake knows no alembic ${alembic.join(' ')}` };
        }
      }
      return { exitCode: 2, stderr: `the fake knows no compose ${args.join(' ')}` };
    });
    // alembic inside a running api container (src/domain/alembic.ts: docker exec).
    h.on(
      'alembic in the api container',
      /^\{ docker exec -e "TWINSTACK_OP=\$TWINSTACK_OP" (\w+) sh -c .* sh alembic (heads|current|upgrade head) <\/dev\/null/,
      (c, m) => {
        const name = this.env.dev.containers.some((k) => k.id === m?.[1]) ? 'dev' : 'prod';
        if (m?.[2] === 'heads') return { stdout: this.newHeads.map((x) => `${x} (head)`).join('\n') + '\n' };
        if (m?.[2] === 'current') return { stdout: name === 'prod' ? `${this.schema.revision} (head)\n` : '' };
        if (name === 'prod') this.schema = { ...this.migratedSchema };
        return {};
      },
    );
    h.on('remove one-off container', /^docker rm -f \S+$/, {});

    // preflight's host facts.
    h.on('resolve paths', /^realpath -m -z -- (.*)$/, (_c, m) => ({ stdout: shellWords(m?.[1] ?? '').join('\0') + '\0' }));
    h.on('host size', /^nproc && cat \/proc\/meminfo$/, { stdout: '8\nMemTotal:       16777216 kB\n' });

    // Images (src/domain/ship.ts, release.ts).
    h.on('image ids', /^docker image inspect --format '\{\{\.Id\}\}' (.*)$/, (_c, m) => {
      const refs = shellWords(m?.[1] ?? '');
      const ids = refs.map((r) => this.images.get(r));
      const missing = refs.filter((_r, i) => !ids[i]);
      return {
        stdout: ids.filter(Boolean).join('\n') + '\n',
        stderr: missing.map((r) => `Error: No such image: ${r}`).join('\n'),
        exitCode: missing.length ? 1 : 0,
      };
    });
    // tag-images.sh: the pairs are its positional parameters, source then new name.
    h.on('docker tag', /^set -- ([^\n]*)\n.*docker tag "\$1" "\$2"/s, (_c, m) => {
      const words = shellWords(m?.[1] ?? '');
      for (let i = 0; i + 1 < words.length; i += 2) {
        const id = this.images.get(words[i]);
        if (!id) return { exitCode: 1, stderr: `Error response from daemon: No such image: ${words[i]}` };
        this.images.set(words[i + 1], id);
      }
      return {};
    });
    h.on('release tags', /^docker images --format '\{\{\.Repository\}\}:\{\{\.Tag\}\}' /, (c) => {
      const project = this.env[this.envNamed(c.script)].project;
      return { stdout: [...this.images.keys()].filter((k) => k.startsWith(`twinstack/${project}-`)).join('\n') + '\n' };
    });
    h.on('health url', /^curl -sS -o \/dev\/null -w '%\{http_code\}' --max-time 10 \S+$/, { stdout: '200' });

    // prod's database (src/domain/schema.ts, backup.ts): dbTool scripts run psql & co. in the db container.
    // On a swarm the db task's container is found by task-container.sh (STACK_FILTER=…) instead of docker ps.
    const inDb = (s: string) => s.startsWith('{ c=$(docker ps -q') || s.startsWith('{ c=$(STACK_FILTER=');
    const db = (re: RegExp) => (s: string) => inDb(s) && re.test(s);
    h.on('alembic revision', db(/to_regclass\(.*alembic_version.*IS NULL/), () => ({ stdout: `${this.schema.revision}\n` }));
    h.on('schema dump', db(/pg_dump .*--schema-only/), () => ({ stdout: this.dump(this.schema) }));
    h.on('write counters', db(/pg_stat_user_tables/), { stdout: 'public.users|10\n' });
    h.on('pg_dump version', db(/pg_dump .*--version/), { stdout: 'pg_dump (PostgreSQL) 17.2\n' });
    h.on('backup alembic value', db(/SELECT version_num FROM alembic_version LIMIT 1/), () => ({ stdout: `${this.schema.revision}\n` }));
    h.on(
      'backup dump',
      (s) => /pg_dump .*-Fc/.test(s) && /PARTIAL=\S+db\.dump\.partial/.test(s),
      () => {
        this.backupSchema = { ...this.schema };
        return { stdout: `${'d'.repeat(64)}  -\n1024\n` };
      },
    );
    h.on('backup globals', (s) => /pg_dumpall .*--globals-only/.test(s) && /\| sha256sum/.test(s), { stdout: `${'e'.repeat(64)}  -\n64\n` });
    h.on('checksum', /^sha256sum (\S+)$/, (_c, m) => ({ stdout: `${(m?.[1] ?? '').endsWith('db.dump') ? 'd'.repeat(64) : 'e'.repeat(64)}  ${m?.[1]}\n` }));
    h.on('pg_restore --list', db(/pg_restore .*--list/), {});
    // Database-level SQL on the maintenance database, as psql reads it from standard input.
    const onServer = (re: RegExp) => (s: string, c: Call) => inDb(s) && / psql .* -f -/.test(s) && re.test(c.stdin ?? '');
    h.on('list databases', onServer(/json_agg\(datname ORDER BY datname\)/), (c) => ({
      stdout: JSON.stringify([...this.databases[this.envNamed(c.script)]].sort()),
    }));
    h.on('rename database', onServer(/ALTER DATABASE "?\w+"? RENAME TO "?\w+"?;/), (c) => this.renames(c));
    // resample's swap (src/resample/swap-begin.sh, swap-pass.sh): a pending file written, then its SQL run.
    h.on('begin swap', /^MARKER=(\S+); DIR=\S+; TMP=\S+; UNDO=/, (c, m) => {
      files.set(m?.[1] ?? '', Buffer.from(shellValue(c.script, 'UNDO')));
      return this.renames(c);
    });
    h.on('pass swap', /^MARKER=(\S+); DIR=\S+; TMP=\S+; FINISH=/, (c, m) => {
      const drop = /DROP DATABASE IF EXISTS "?(\w+)"?;/.exec(shellValue(c.script, 'FINISH'));
      this.databases[this.envNamed(c.script)].delete(drop?.[1] ?? '');
      files.delete(m?.[1] ?? '');
      return {};
    });
    h.on('drop database', onServer(/DROP DATABASE IF EXISTS "?\w+"?;/), (c) => {
      this.databases[this.envNamed(c.script)].delete(/DROP DATABASE IF EXISTS "?(\w+)"?;/.exec(c.stdin ?? '')?.[1] ?? '');
      return {};
    });
    h.on('create database', onServer(/CREATE DATABASE "?\w+"?/), (c) => {
      this.databases[this.envNamed(c.script)].add(/CREATE DATABASE "?(\w+)"?/.exec(c.stdin ?? '')?.[1] ?? '');
      return {};
    });

    // promote's rehearsal (src/domain/rehearsal.ts): the backup restored into a copy, pg_locks sampled while it migrates.
    h.on('restore into the copy', db(/pg_restore .*--no-owner --exit-on-error -d makapix_twinstack_rehearse/), {});
    h.on('read the copy', db(/psql .* -d makapix_twinstack_rehearse -c /), (c) => ({
      stdout: /FROM alembic_version/.test(c.script) ? `${this.newHeads.join(',')}\n` : '',
    }));
    h.on('sample pg_locks', /^STOP_FILE=\S+\.stop; SAMPLE=/, () => ({ stdout: this.lockSamples }));
    h.on('stop the sampler', /^touch \S+\.stop$/, {});
    h.on('list backups', /^BASE=(\S+)\n/, (_c, m) => ({
      stdout: [...files.entries()]
        .filter(([f]) => f.startsWith(`${m?.[1]}/b`) && f.endsWith('/manifest.json'))
        .map(([, t]) => `${t.toString()}@@twinstack-manifest@@\n`)
        .join(''),
    }));
    h.on('restore database', /^PENDING_DIR=.*pg_restore .*--single-transaction/s, () => {
      if (this.backupSchema) this.schema = { ...this.backupSchema };
      return {};
    });
  }
}

/** A parameter's value as hostScript set it in front of a script (`NAME=<quoted>; `), unquoted. */
export function shellValue(script: string, name: string): string {
  const m = new RegExp(`(?:^|; )${name}=('(?:[^']|'\\\\'')*'|[^;\\s]*)`).exec(script);
  if (!m) throw new Error(`the script sets no ${name}`);
  const v = m[1];
  return v.startsWith("'") ? v.slice(1, -1).replace(/'\\''/g, "'") : v;
}
