/**
 * What a rolling service (promote.rolling) needs from prod's merged compose configuration. During a
 * rolling replacement two containers of the service run side by side for a moment, so anything that
 * exists once per host cannot belong to the service: a fixed container name, a published host port,
 * the host's network. And the switch waits for the new container's healthcheck before the old one
 * goes. One finding per problem, saying what to change.
 */
import type { EnvironmentName } from '../domain/config';
import type { ComposeModel } from './compose-model';
import type { Finding } from './findings';

type Add = (severity: Finding['severity'], message: string, fix: string) => void;
type Service = ComposeModel['services'][number];

export interface CheckRollingOptions {
  compose: ComposeModel;
  /** The services promote.rolling names. */
  rolling: readonly string[];
  environment: EnvironmentName;
  /** preflight's warn-only checks: with 'rolling' among them, its errors are warnings. */
  warnOnly?: readonly string[];
  /** Where the code is mounted from, to warn of a bind mount of the checkout that a release directory avoids. */
  code?: { checkout: string; releaseDirs: boolean };
}

export function checkRolling({ compose, rolling, environment, warnOnly = [], code }: CheckRollingOptions): Finding[] {
  const out: Finding[] = [];
  const add: Add = (severity, message, fix) => {
    const down = severity === 'error' && warnOnly.includes('rolling');
    out.push({ check: 'rolling', environment, severity: down ? 'warning' : severity, message: down ? `${message} (warn-only)` : message, fix });
  };
  const inactive = new Set(compose.inactive);
  for (const name of rolling) {
    const s = compose.services.find((x) => x.name === name);
    if (!s) {
      const known = compose.services.map((x) => x.name).join(', ');
      add(
        'error',
        inactive.has(name)
          ? `rolling service ${name} is in an inactive profile of ${environment}'s compose configuration`
          : `promote.rolling names ${name}, which ${environment}'s compose configuration does not define (services: ${known})`,
        `correct promote.rolling, or define ${name} in ${environment}'s compose files`,
      );
      continue;
    }
    checkOncePerHost(s, add);
    checkNetwork(s, add);
    checkCode(s, environment, add, code);
    checkHealthcheck(s, add);
  }
  return out;
}

/** A fixed container name, a host name, a published host port: what exists once per host. */
function checkOncePerHost(s: Service, add: Add): void {
  const name = s.name;
  if (s.containerName) {
    add(
      'error',
      `rolling service ${name} sets container_name ${s.containerName}: its new container cannot start beside the old one under the same name`,
      `remove container_name from ${name}`,
    );
  }
  if (s.hostname) {
    add(
      'warning',
      `rolling service ${name} sets hostname ${s.hostname}: the old and the new container answer to the same name, so a route probe cannot tell them apart by it (only by short id or ip:port)`,
      `remove hostname from ${name}, or have promote.route-probe's header give the upstream's ip:port`,
    );
  }
  if (s.ports.length) {
    const ports = [...new Set(s.ports.map((p) => `${p.hostIp ? `${p.hostIp}:` : ''}${p.port}`))].join(', ');
    add(
      'error',
      `rolling service ${name} publishes host port ${ports}: its new container cannot bind it while the old one holds it`,
      `remove ports from ${name} and let the proxy reach it over a Docker network (expose the port instead)`,
    );
  }
}

function checkNetwork(s: Service, add: Add): void {
  const name = s.name;
  if (s.networkMode === 'host') {
    add(
      'error',
      `rolling service ${name} uses network_mode: host: its new container cannot listen on the port the old one holds`,
      `give ${name} a Docker network the proxy is on instead of network_mode: host`,
    );
  } else if (s.networkMode) {
    add(
      'error',
      `rolling service ${name} uses network_mode: ${s.networkMode}: the proxy cannot find its containers by name on a network`,
      `give ${name} a Docker network the proxy is on instead of network_mode`,
    );
  }
}

/**
 * Code mounted from the checkout changes under the old container when the checkout moves: the two
 * containers of a switch only run their own code from release directories.
 */
function checkCode(s: Service, environment: EnvironmentName, add: Add, code?: { checkout: string; releaseDirs: boolean }): void {
  const fromCheckout =
    code && !code.releaseDirs ? s.mounts.filter((m) => m.type === 'bind' && (m.source === code.checkout || m.source.startsWith(`${code.checkout}/`))) : [];
  if (fromCheckout.length) {
    add(
      'warning',
      `rolling service ${s.name} bind-mounts ${fromCheckout.map((m) => `${m.source}:${m.target}`).join(', ')} from ${environment}'s checkout: during a switch the old container would read the new commit's files`,
      'set promote.release-dirs: true, so each release runs from its own directory',
    );
  }
}

function checkHealthcheck(s: Service, add: Add): void {
  const name = s.name;
  if (s.healthcheck === 'disabled') {
    add(
      'error',
      `rolling service ${name} has its healthcheck disabled: the switch cannot tell when the new container may take traffic`,
      `give ${name} a healthcheck`,
    );
  } else if (s.healthcheck === 'image') {
    add(
      'warning',
      `rolling service ${name} has no healthcheck in the compose files: a rolling replacement refuses a new container whose image has none either`,
      `add a healthcheck to ${name} in the compose file (or be sure its image has a HEALTHCHECK)`,
    );
  }
}
