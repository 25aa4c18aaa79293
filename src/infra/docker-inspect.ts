/**
 * The parts of `docker inspect` output that twinstack reads (containers: image, labels, state,
 * health, limits, networks), as a schema: an answer of another shape is refused naming the field, never read
 * through a cast. Fields docker leaves out or sets to null are optional; the rest is ignored.
 */
import { z } from 'zod';
import { parseHostJson } from './json';

const labels = z.record(z.string()).nullish();

export const containerInspect = z.object({
  Id: z.string(),
  Name: z.string(),
  Image: z.string(),
  RestartCount: z.number().nullish(),
  Config: z
    .object({
      Image: z.string().nullish(),
      Labels: labels,
      Healthcheck: z.object({ Test: z.array(z.string()).nullish() }).nullish(),
    })
    .nullish(),
  State: z
    .object({
      Running: z.boolean().nullish(),
      Status: z.string().nullish(),
      ExitCode: z.number().nullish(),
      StartedAt: z.string().nullish(),
      OOMKilled: z.boolean().nullish(),
      Health: z.object({ Status: z.string().nullish() }).nullish(),
    })
    .nullish(),
  HostConfig: z
    .object({
      NanoCpus: z.number().nullish(),
      CpuQuota: z.number().nullish(),
      CpuPeriod: z.number().nullish(),
      Memory: z.number().nullish(),
      NetworkMode: z.string().nullish(),
    })
    .nullish(),
  NetworkSettings: z.object({ Networks: z.record(z.unknown()).nullish() }).nullish(),
});
export type ContainerInspect = z.output<typeof containerInspect>;

/** `docker inspect <container>...`'s JSON array; empty output (no container) is an empty list. */
export function parseContainerInspect(json: string): ContainerInspect[] {
  return parseHostJson(z.array(containerInspect), json.trim() || '[]', 'docker inspect output');
}
