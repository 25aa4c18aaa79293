/**
 * Shipping what was gated: prod runs the image ids the passing gate tested on dev, tagged under
 * prod's own image names, and started with `up --no-build`. A service is rebuilt (from the same
 * commit) only where prod's merged build definition differs from dev's — a build arg such as a
 * `NEXT_PUBLIC_*` URL baked in at build time, another target, dockerfile or context — and the
 * summary names each one and why. Prod never builds a service that could have been shipped.
 */
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { OperationFailed } from '../infra/errors';
import type { Host } from '../infra/host';
import type { Logger } from '../infra/logger';
import { imageIdsCommand, tagImages } from '../infra/docker';
import { scalarText } from '../infra/units';
import type { ContainerState, Environment } from './environment';
import { shortId } from './state';

export interface BuildDefinition {
  /** The build context, relative to the checkout it was read from. */
  context: string;
  dockerfile: string;
  target: string;
  /** Build args by name (values compared, never printed: they may be secrets). */
  args: Record<string, string>;
}

export interface ServiceBuild {
  service: string;
  /** The image name from the merged configuration, if it sets one. */
  image?: string;
  build?: BuildDefinition;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The build definition of every service in a merged compose configuration (`config` output of v1 or
 * v2), contexts made relative to `root` so two checkouts of one commit compare equal.
 */
export function buildDefinitions(configYaml: string, root: string): Map<string, ServiceBuild> {
  const doc: unknown = parseYaml(configYaml);
  if (!isObj(doc) || !isObj(doc.services)) throw new OperationFailed('the merged compose configuration has no services');
  const out = new Map<string, ServiceBuild>();
  for (const [service, raw] of Object.entries(doc.services)) {
    const s = isObj(raw) ? raw : {};
    const entry: ServiceBuild = { service, image: typeof s.image === 'string' ? s.image : undefined };
    const b = s.build;
    if (typeof b === 'string' || isObj(b)) {
      const o: Obj = typeof b === 'string' ? { context: b } : b;
      const context = typeof o.context === 'string' ? o.context : '.';
      const args: Record<string, string> = {};
      if (isObj(o.args)) for (const [k, v] of Object.entries(o.args)) args[k] = scalarText(v);
      else if (Array.isArray(o.args))
        for (const a of o.args.map(String)) {
          const eq = a.indexOf('=');
          args[eq < 0 ? a : a.slice(0, eq)] = eq < 0 ? '' : a.slice(eq + 1);
        }
      entry.build = {
        context: path.posix.isAbsolute(context) ? path.posix.relative(root, context) || '.' : context,
        dockerfile: typeof o.dockerfile === 'string' ? o.dockerfile : 'Dockerfile',
        target: typeof o.target === 'string' ? o.target : '',
        args,
      };
    }
    out.set(service, entry);
  }
  return out;
}

/** Why two build definitions differ, in words that name no value; empty when they are the same. */
export function buildDifferences(prod: BuildDefinition, dev: BuildDefinition): string[] {
  const out: string[] = [];
  if (prod.context !== dev.context) out.push(`build context differs (prod ${prod.context}, dev ${dev.context})`);
  if (prod.dockerfile !== dev.dockerfile) out.push(`dockerfile differs (prod ${prod.dockerfile}, dev ${dev.dockerfile})`);
  if (prod.target !== dev.target) out.push(`build target differs (prod ${prod.target || 'none'}, dev ${dev.target || 'none'})`);
  const names = [...new Set([...Object.keys(prod.args), ...Object.keys(dev.args)])].sort();
  const differing = names.filter((n) => prod.args[n] !== dev.args[n]);
  if (differing.length) out.push(`build arg${differing.length > 1 ? 's' : ''} ${differing.join(', ')} differ${differing.length > 1 ? '' : 's'}`);
  return out;
}

export interface ShipPlan {
  /** Gated image ids put on prod unchanged, under prod's image name. */
  ship: Array<{ service: string; id: string; name: string }>;
  /** Services rebuilt from the same commit because prod's build differs from dev's. */
  rebuild: Array<{ service: string; name: string; reasons: string[] }>;
  /** Prod services that dev did not run (or runs from another image): started as prod configures them. */
  asConfigured: Array<{ service: string; reason: string; builds: boolean }>;
}

/**
 * What to do with each prod service. `names` is prod's image name per service (from its config, its
 * current release, or compose's default naming).
 */
export function shipPlan(
  prod: Map<string, ServiceBuild>,
  dev: Map<string, ServiceBuild>,
  gated: Record<string, string>,
  names: Record<string, string>,
): ShipPlan {
  const plan: ShipPlan = { ship: [], rebuild: [], asConfigured: [] };
  for (const [service, p] of [...prod.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const d = dev.get(service);
    const id = gated[service];
    const name = names[service];
    if (!d || !id) {
      plan.asConfigured.push({ service, reason: d ? 'the gate recorded no image for it' : 'dev does not run it', builds: !!p.build });
      continue;
    }
    if (p.build && d.build) {
      const reasons = buildDifferences(p.build, d.build);
      if (reasons.length) plan.rebuild.push({ service, name, reasons });
      else plan.ship.push({ service, id, name });
    } else if (p.build || d.build) {
      plan.rebuild.push({ service, name, reasons: [p.build ? 'prod builds it, dev pulls it' : 'dev builds it, prod pulls it'] });
    } else if (p.image !== d.image) {
      plan.asConfigured.push({ service, reason: `prod runs image ${p.image ?? '?'}, dev ${d.image ?? '?'}`, builds: false });
    } else {
      plan.ship.push({ service, id, name });
    }
  }
  return plan;
}

/** The image name compose gives a service that sets none: `<project>-<service>` (v2) or `<project>_<service>` (v1). */
export function defaultImageName(project: string, service: string, composeCommand: string): string {
  return composeCommand === 'docker-compose' ? `${project}_${service}` : `${project}-${service}`;
}

/** The merged configuration of an environment (its compose files and env file), read quietly: it holds secrets. */
export async function mergedBuilds(host: Host, env: Environment): Promise<Map<string, ServiceBuild>> {
  return buildDefinitions(await mergedConfig(host, env), env.cfg.checkout);
}

/** An environment's merged compose configuration (`compose config`), as YAML text. It may hold secrets: never logged. */
export async function mergedConfig(host: Host, env: Environment): Promise<string> {
  const r = await host.run(env.compose('config'), env.composeOptions({ quiet: true, label: `${env.name}: compose config`, timeoutSeconds: 180 }));
  return r.stdout;
}

/**
 * Puts the plan on the host: every shipped id tagged under prod's name (the id must still be on the
 * host), every rebuilt service built from `at` (prod's configuration at the new commit). Returns the
 * image id each service must run. Running containers keep their image: nothing restarts here.
 */
export async function shipImages(host: Host, at: Environment, plan: ShipPlan, log: Logger): Promise<Record<string, string>> {
  const expected: Record<string, string> = {};
  if (plan.ship.length) {
    const ids = plan.ship.map((s) => s.id);
    const check = await host.run(imageIdsCommand(ids), { check: false, quiet: true, timeoutSeconds: 120 });
    if (check.exitCode !== 0) {
      const present = new Set(check.stdout.split('\n').map((l) => l.trim()));
      const gone = plan.ship.filter((s) => !present.has(s.id));
      throw new OperationFailed(
        `the gated image${gone.length > 1 ? 's' : ''} ${gone.map((s) => `${s.service} ${shortId(s.id)}`).join(', ')} ${gone.length > 1 ? 'are' : 'is'} no longer on the host: deploy dev and run the gate again. Nothing was changed.`,
      );
    }
    await host.run(tagImages(plan.ship.map((s) => ({ from: s.id, to: s.name }))), {
      label: `${at.name}: tagging the gated images`,
      quiet: true,
      timeoutSeconds: 300,
    });
    for (const s of plan.ship) {
      expected[s.service] = s.id;
      log.info(`${at.name}: ${s.service} ships the gated image ${shortId(s.id)} as ${s.name}`);
    }
  }
  if (plan.rebuild.length) {
    for (const r of plan.rebuild) log.info(`${at.name}: ${r.service} is rebuilt from the same commit: ${r.reasons.join('; ')}`);
    log.startGroup(`${at.name}: compose build ${plan.rebuild.map((r) => r.service).join(' ')}`);
    try {
      await host.run(
        at.compose('build', ...plan.rebuild.map((r) => r.service)),
        at.composeOptions({ label: `${at.name} compose build`, timeoutSeconds: 3600 }),
      );
    } finally {
      log.endGroup();
    }
    const ids = await host.run(imageIdsCommand(plan.rebuild.map((r) => r.name)), { quiet: true, timeoutSeconds: 120 });
    ids.stdout
      .trim()
      .split('\n')
      .forEach((id, i) => (expected[plan.rebuild[i].service] = id.trim()));
  }
  return expected;
}

/** Fails naming every service whose container does not run the image it must. */
export function assertImages(containers: ContainerState[], expected: Record<string, string>, envName: string): void {
  const wrong: string[] = [];
  for (const [service, id] of Object.entries(expected)) {
    const c = containers.find((x) => x.service === service && !x.oneoff);
    if (!c) wrong.push(`${service} has no container`);
    else if (c.imageId !== id) wrong.push(`${service} runs ${shortId(c.imageId)}, not ${shortId(id)}`);
  }
  if (wrong.length) throw new OperationFailed(`${envName} does not run the images it was given: ${wrong.join('; ')}`);
}
