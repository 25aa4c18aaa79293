import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/domain/config';
import { ConfigurationError } from '../../src/infra/errors';
import * as validate from '../../src/infra/validate';

const makapix = fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8');

function rejects(text: string, message: RegExp): void {
  assert.throws(
    () => parseConfig(text, '.github/twinstack.yml'),
    (e: Error) => {
      assert.ok(e instanceof ConfigurationError, String(e));
      assert.ok(!e.message.includes('\n'), 'the error is more than one line');
      assert.match(e.message, message);
      return true;
    },
  );
}

describe('the config file', () => {
  it("reads Makapix's config with defaults filled in", () => {
    const c = parseConfig(makapix, 'makapix.yml');
    assert.equal(c.environments.prod.project, 'makapix-prod');
    assert.deepEqual(c.environments.dev.composeFiles, ['deploy/stack/docker-compose.yml', 'deploy/stack/docker-compose.dev.yml']);
    assert.equal(c.environments.dev.database.port, 5433);
    assert.equal(c.environments.prod.database.via, 'container');
    assert.equal(c['keep-releases'], 5);
    assert.equal(c['compose-command'], 'docker compose');
  });

  it('names a misspelt key with its path', () => {
    rejects(
      makapix.replace('    env-file: deploy/stack/.env.dev', '    envfile: deploy/stack/.env.dev'),
      /^\.github\/twinstack\.yml: environments\.dev\.env-file: Required; environments\.dev: unknown key "envfile"$/,
    );
  });

  it('names a wrong type with its path', () => {
    rejects(makapix.replace('port: 5433', 'port: "5433"'), /environments\.dev\.database\.port: Expected number, received string/);
  });

  it('refuses the same checkout or project for both environments', () => {
    rejects(makapix.replace('checkout: /opt/makapix-dev', 'checkout: /opt/makapix'), /environments\.dev\.checkout: must differ from prod's/);
    rejects(makapix.replace('project: makapix-dev', 'project: makapix-prod'), /environments\.dev\.project: must differ/);
  });

  it('refuses paths that escape or carry shell syntax', () => {
    rejects(makapix.replace('env-file: deploy/stack/.env.dev', 'env-file: ../secrets/.env'), /environments\.dev\.env-file: must not contain "\.\."/);
    rejects(makapix.replace('checkout: /opt/makapix-dev', 'checkout: /opt/$(reboot)'), /environments\.dev\.checkout: must be an absolute path/);
  });

  it('refuses a git remote that git would read as an option', () => {
    rejects(
      makapix.replace('    checkout: /opt/makapix-dev', '    checkout: /opt/makapix-dev\n    remote: --upload-pack=touch /tmp/x'),
      /environments\.dev\.remote: must be a git remote name/,
    );
    rejects(
      makapix.replace('    checkout: /opt/makapix-dev', '    checkout: /opt/makapix-dev\n    remote: -x'),
      /environments\.dev\.remote: must be a git remote name/,
    );
    assert.equal(
      parseConfig(makapix.replace('    checkout: /opt/makapix-dev', '    checkout: /opt/makapix-dev\n    remote: upstream'), 'x').environments.dev.remote,
      'upstream',
    );
  });

  it('refuses an unknown compose command', () => {
    rejects(makapix.replace('compose-command: docker compose', 'compose-command: podman-compose'), /compose-command: Invalid enum value/);
  });

  it('reports YAML syntax errors with the line', () => {
    rejects('environments:\n  prod: [\n', /line \d+: not valid YAML/);
  });
});

describe('inputs that name things on the host', () => {
  it('accepts ordinary values', () => {
    assert.equal(validate.gitRef('main'), 'main');
    assert.equal(validate.gitRef('feature/pixel-grid'), 'feature/pixel-grid');
    assert.equal(validate.releaseId('r20260101T120000Z-1a2b3c4'), 'r20260101T120000Z-1a2b3c4');
    assert.equal(validate.environmentName('dev'), 'dev');
    assert.equal(validate.absolutePath('/mnt/vault-1/'), '/mnt/vault-1');
  });

  const hostile = ['$(id)', '`id`', 'main; rm -rf /', "it's", 'a\nb', '--upload-pack=touch x', '-x', '../etc', 'x'.repeat(300), 'ünïcødé'];
  for (const v of hostile) {
    it(`refuses ${JSON.stringify(v.slice(0, 30))} in one line`, () => {
      for (const f of [validate.gitRef, validate.releaseId, validate.environmentName, validate.backupId]) {
        assert.throws(
          () => f(v),
          (e: Error) => e instanceof ConfigurationError && !e.message.includes('\n'),
        );
      }
    });
  }
});

describe('the target of an environment', () => {
  const swarmDev = (extra = '') => makapix.replace('    vault: /mnt/vault-dev', `    vault: /mnt/vault-dev\n    target: swarm${extra}`);

  it('is compose unless the config says swarm, with the swarm defaults filled in', () => {
    const c = parseConfig(makapix, 'makapix.yml');
    assert.equal(c.environments.prod.target, 'compose');
    assert.equal(c.environments.dev.target, 'compose');
    assert.deepEqual(c.swarm, { 'label-key': 'twinstack.env', 'allow-shared-node': false, nodes: {} });
  });

  it('reads a swarm target with its registry, label key and shared-node switch', () => {
    const c = parseConfig(`${swarmDev()}\nswarm:\n  registry: 127.0.0.1:5000\n  label-key: example.env\n  allow-shared-node: true\n`, 'makapix.yml');
    assert.equal(c.environments.dev.target, 'swarm');
    assert.equal(c.environments.prod.target, 'compose');
    assert.deepEqual(c.swarm, { registry: '127.0.0.1:5000', 'label-key': 'example.env', 'allow-shared-node': true, nodes: {} });
    assert.equal(parseConfig(`${swarmDev()}\nswarm: { registry: registry.example.com/makapix }\n`, 'x').swarm.registry, 'registry.example.com/makapix');
  });

  it('refuses a target other than compose or swarm', () => {
    rejects(
      makapix.replace('    vault: /mnt/vault-dev', '    vault: /mnt/vault-dev\n    target: kubernetes'),
      /: environments\.dev\.target: must be compose or swarm$/,
    );
  });

  it('asks for the registry when an environment runs on swarm', () => {
    rejects(swarmDev(), /: swarm\.registry: is needed because environments\.dev\.target is swarm: set it to the registry the nodes pull from/);
  });

  it('refuses a registry address with a scheme, a label key with spaces, and unknown swarm keys', () => {
    rejects(`${swarmDev()}\nswarm: { registry: "https://127.0.0.1:5000" }\n`, /swarm\.registry: must be a registry address such as 127\.0\.0\.1:5000/);
    rejects(`${swarmDev()}\nswarm: { registry: "127.0.0.1:5000", label-key: "twin env" }\n`, /swarm\.label-key: must be a node label key/);
    rejects(`${swarmDev()}\nswarm: { registry: "127.0.0.1:5000", shared: true }\n`, /swarm: unknown key "shared"/);
    rejects(`${swarmDev()}\nswarm: { registry: "127.0.0.1:5000", allow-shared-node: "yes" }\n`, /swarm\.allow-shared-node: Expected boolean/);
  });

  it('reads swarm.nodes: each node hostname to the endpoint the manager reaches its engine by (ssh, tcp, a unix socket)', () => {
    const nodes = {
      'node-2': 'ssh://deploy@10.0.0.2',
      'node-3.example.com': 'ssh://node-3.example.com:2222',
      worker_4: 'tcp://10.0.0.4:2375',
      local: 'unix:///run/docker-2/docker.sock',
    };
    const yaml = Object.entries(nodes)
      .map(([k, v]) => `    ${k}: ${v}\n`)
      .join('');
    const c = parseConfig(`${swarmDev()}\nswarm:\n  registry: 127.0.0.1:5000\n  nodes:\n${yaml}`, 'makapix.yml');
    assert.deepEqual(c.swarm.nodes, nodes);
  });

  it('refuses a node endpoint docker -H would not take as meant, in one line saying what to write', () => {
    const bad = [
      'https://10.0.0.2:2376', // not a docker transport
      'ssh://', // no host
      'ssh://deploy@10.0.0.2/path', // a path: not an ssh endpoint
      'tcp://10.0.0.4', // tcp needs the port
      'unix://run/docker.sock', // a relative path
      'ssh://host; rm -rf /', // shell in the value
      '10.0.0.2:2375', // no scheme
      'ssh://-oProxyCommand=x', // an ssh option, not a host
      'ssh://-l@host', // nor a user
    ];
    for (const endpoint of bad) {
      const err = (() => {
        try {
          parseConfig(`${swarmDev()}\nswarm:\n  registry: 127.0.0.1:5000\n  nodes:\n    node-2: ${JSON.stringify(endpoint)}\n`, 'x.yml');
        } catch (e) {
          return e as Error;
        }
        return undefined;
      })();
      assert.ok(err, `${endpoint} was accepted`);
      assert.equal(err.message.split('\n').length, 1, err.message);
      assert.match(
        err.message,
        /swarm\.nodes\.node-2: must be a Docker endpoint the manager reaches the node by: ssh:\/\/\[user@\]host\[:port\], tcp:\/\/host:port or unix:\/\/\/absolute\/path$/,
        endpoint,
      );
    }
    rejects(`${swarmDev()}\nswarm:\n  registry: 127.0.0.1:5000\n  nodes: { "node 2": "ssh://n2" }\n`, /swarm\.nodes\.node 2: must be a node hostname/);
  });
});

describe('the README', () => {
  it('shows a config that the schema accepts', () => {
    const readme = fs.readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### The config file'));
    const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block, 'no yaml block under "The config file"');
    const c = parseConfig(block, 'README.md');
    assert.equal(c.environments.dev.project, 'makapix-dev');
  });
});
