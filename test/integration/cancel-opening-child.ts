/**
 * Run by cancel-opening.test.ts as a process of its own, as an action runs: through runAction (its
 * signal handling included). Takes dev's lock to read it, as promote's first step does, touches the
 * marker on the host and waits there until the test sends SIGTERM.
 */
import { runAction, type ActionDefinition, type ConnectionInputs } from '../../src/actions/runner';
import { EnvironmentLock } from '../../src/domain/lock';
import { sh } from '../../src/infra/shell';

const marker = process.env.TWINSTACK_TEST_MARKER ?? '';

const readDev: ActionDefinition<ConnectionInputs, Record<string, never>, Record<string, never>> = {
  name: 'read-dev',
  prepare: () => ({}),
  async execute({ host, config, run, log }) {
    const lock = await EnvironmentLock.acquireToRead({
      host,
      stateDir: config['state-dir'],
      env: 'dev',
      run,
      action: 'test (reading dev)',
      waitSeconds: 30,
      log,
    });
    try {
      await host.run(sh`touch ${marker} && sleep 300`, { quiet: true, label: 'reading dev (test)', timeoutSeconds: 600 });
    } finally {
      await lock.release();
    }
  },
};

runAction(readDev);
