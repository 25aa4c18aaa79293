/**
 * What several actions share at their edge: reading the environment input and drawing the
 * services table of a job summary. Actions import this, never each other.
 */
import type { EnvironmentName } from '../domain/config';
import type { ContainerState } from '../domain/environment';
import { ConfigurationError } from '../infra/errors';
import type { Summary } from '../infra/summary';
import * as validate from '../infra/validate';

export function environmentInput(value: string): EnvironmentName {
  if (value !== 'prod' && value !== 'dev') {
    throw new ConfigurationError(`input environment "${validate.printable(value)}" must be prod or dev`);
  }
  return value;
}

export function servicesTable(s: Summary, containers: ContainerState[]): Summary {
  return s.table(
    ['service', 'container', 'state', 'health', 'image'],
    containers.map((c) => [c.service, c.name, c.status + (c.status === 'exited' ? ` (${c.exitCode})` : ''), c.health, c.image]),
  );
}
