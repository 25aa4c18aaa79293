import { z } from 'zod';

/**
 * `swarm:` — what an environment whose `target` is swarm needs from the cluster: the registry its
 * nodes pull from (stacks cannot build, so deploy builds on the manager and pushes there), the node
 * labels that say which environments a node serves, and whether one node may serve both (a
 * single-node swarm, as one host does today).
 *
 * A node serves an environment when it carries `<label-key>.<env>=true` (`docker node update
 * --label-add twinstack.env.dev=true <node>`), and each service of that environment's stack is
 * constrained to `node.labels.<label-key>.<env> == true`. One label per environment rather than one
 * label whose value names the environment: a label has one value, so a single node could then never
 * serve both.
 */
export const swarmSchema = z
  .object({
    /** host[:port][/path] of the registry, e.g. 127.0.0.1:5000 or registry.example.com/makapix. */
    registry: z
      .string()
      .regex(
        /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/,
        'must be a registry address such as 127.0.0.1:5000 or registry.example.com/team (lower case, no scheme)',
      )
      .optional(),
    /** The node labels' prefix: a node serves <env> when it carries <label-key>.<env>=true. */
    'label-key': z
      .string()
      .regex(/^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$/, 'must be a node label key such as twinstack.env (lower case letters, digits, . _ -)')
      .default('twinstack.env'),
    /** Let one node carry both environments' labels (a single-node swarm); otherwise preflight refuses such a node. */
    'allow-shared-node': z.boolean().default(false),
  })
  .strict()
  .default({});

export type SwarmSettings = z.output<typeof swarmSchema>;
