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
/** A node's hostname as the engine reports it: letters, digits, dots, dashes, underscores. */
const nodeHostname = z
  .string()
  .regex(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,252}[A-Za-z0-9])?$/, 'must be a node hostname as `docker node inspect` prints it (letters, digits, . _ -)');

/** The endpoints `docker -H` takes that twinstack admits: ssh (normal), tcp (private networks only), a unix socket. */
export const NODE_ENDPOINT =
  /^(ssh:\/\/([A-Za-z0-9_][A-Za-z0-9._-]*@)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?|tcp:\/\/[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:\d{1,5}|unix:\/\/\/[A-Za-z0-9._/-]+)$/;

const nodeEndpoint = z
  .string()
  .regex(NODE_ENDPOINT, 'must be a Docker endpoint the manager reaches the node by: ssh://[user@]host[:port], tcp://host:port or unix:///absolute/path');

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
    /**
     * How the manager reaches the engine of each other node, for what works inside a task's container
     * (database tools, the gate's exec, monitor's figures): node hostname (as `docker node inspect`
     * prints .Description.Hostname) → the endpoint the manager's docker client is given as `docker -H`.
     * On a real cluster `ssh://[user@]host[:port]` is the normal choice: docker's own ssh transport, run
     * by the manager's SSH user, who needs a key and a known_hosts entry for the node, while the user
     * there must be allowed to run docker. `tcp://host:port` without TLS gives root on the node to
     * anyone who reaches the port: never let it leave a private network. `unix:///path` is a socket on
     * the manager itself (tests). A node with no entry is refused in one line naming it.
     */
    nodes: z.record(nodeHostname, nodeEndpoint).default({}),
  })
  .strict()
  .default({});

export type SwarmSettings = z.output<typeof swarmSchema>;
