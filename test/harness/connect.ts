import { MemoryLogger, type Logger } from '../../src/infra/logger';
import { SshHost, type SshTarget } from '../../src/infra/ssh';
import type { TestSshd } from './sshd';

export function target(sshd: TestSshd, over: Partial<SshTarget> = {}): SshTarget {
  return { host: '127.0.0.1', port: sshd.port, user: sshd.user, privateKey: sshd.privateKey, knownHosts: sshd.knownHosts, connectTimeoutSeconds: 10, ...over };
}

export async function connect(sshd: TestSshd, over: Partial<SshTarget> = {}, log: Logger = new MemoryLogger()): Promise<SshHost> {
  return SshHost.connect(target(sshd, over), log);
}
