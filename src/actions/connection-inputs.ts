/**
 * The inputs every action takes to reach the host, written once. scripts/action-inputs.ts writes
 * them into each actions/<name>/action.yml between marker comments (`npm run bundle`), and
 * `npm run check-dist` fails when a copy differs. The runner reads all of them for every action
 * (`ConnectionInputs` in runner.ts is typed from this list), so no action leaves one out.
 */
export interface InputSpec {
  description: string;
  required: boolean;
  /** Written only here and in the generated action.yml copies; the code reads it with io.defaulted(). */
  default?: string;
}

export const CONNECTION_INPUTS = {
  host: { description: 'Address of the VPS (name or IP).', required: true },
  port: { description: 'SSH port of the VPS.', required: false, default: '22' },
  user: { description: 'User to log in as; it must be able to run docker.', required: false, default: 'root' },
  'ssh-key': {
    description: 'Private key (OpenSSH format) to log in with. Pass it from a secret; it is masked as soon as it is read.',
    required: true,
  },
  'ssh-passphrase': { description: 'Passphrase of ssh-key, if it is encrypted. Pass it from a secret.', required: false },
  'known-hosts': {
    description: "The host's public key line(s), as in ~/.ssh/known_hosts. An unknown or different host key refuses the connection.",
    required: true,
  },
  config: { description: 'Path of the twinstack config file, relative to the workspace.', required: false, default: '.github/twinstack.yml' },
  'lock-timeout': { description: "Seconds to wait for an environment's lock before failing.", required: false, default: '600' },
} as const satisfies Record<string, InputSpec>;
