// The HA stack's compose file (deploy/ha/) as Docker Compose itself reads it: `docker compose
// config` must accept it, and what Compose makes of it (interpolated defaults, merged anchors,
// paths resolved from deploy/ha/) must be what the stack needs. Its structure is checked without
// Docker in tests/api/deploy.rs; its images have no local stand-ins here (Garage, Prometheus,
// Python), so the stack is not started.
//
// Needs Docker Compose v2: `../shared/docker/setup.sh` installs it (run here when missing, as
// the compose suite does; as root).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = process.env.GALLERY_SHARED_DIR || join(root, '..', 'shared');
const file = join(root, 'deploy', 'ha', 'docker-compose.yml');

const composeWorks = () => spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' }).status === 0;

/// `docker compose config` of the HA file, as JSON, with only `env` for variables (no .env).
function config(env = {}) {
  const result = spawnSync('docker', ['compose', '-f', file, 'config', '--format', 'json'], {
    cwd: root,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
  });
  assert.equal(result.status, 0, `docker compose refused ${relative(root, file)}:\n${result.stderr}`);
  return JSON.parse(result.stdout);
}

before(() => {
  if (composeWorks()) return;
  assert.ok(existsSync(join(shared, 'docker', 'setup.sh')),
    `Docker Compose is missing, and so is ${shared}/docker/setup.sh, which installs it`);
  assert.equal(process.getuid?.(), 0, 'Docker Compose is missing: ../shared/docker/setup.sh installs it, as root');
  const setup = spawnSync('bash', [join(shared, 'docker', 'setup.sh')], { encoding: 'utf8', timeout: 1800 * 1000 });
  assert.equal(setup.status, 0, `../shared/docker/setup.sh failed:\n${setup.stdout}\n${setup.stderr}`);
  assert.ok(composeWorks(), 'Docker Compose still missing after ../shared/docker/setup.sh');
});

test('Compose accepts the HA stack and reads it as the stack needs', () => {
  const { services, volumes } = config();
  assert.equal(services.web.deploy.replicas, 2);
  // Interpolated default, read as a number.
  assert.equal(services.worker.deploy.replicas, 3);
  assert.deepEqual(services.nginx.ports.map((p) => [p.target, p.published]), [[80, '8080']]);
  // Anchors merged as Compose merges them: each Sentinel has the Redis image, its own command
  // and its own health check.
  for (const n of [1, 2, 3]) {
    const sentinel = services[`sentinel-${n}`];
    assert.equal(sentinel.image, services['redis-1'].image);
    assert.deepEqual(sentinel.command, ['sentinel']);
    assert.match(sentinel.healthcheck.test.join(' '), /-p 26379 ping/);
    assert.deepEqual(services[`garage-${n}`].networks.backend.aliases, ['s3']);
  }
  // Every file mounted from the repository exists where Compose resolved it (deploy/ha/...).
  const binds = Object.entries(services).flatMap(([name, s]) =>
    (s.volumes || []).filter((v) => v.type === 'bind').map((v) => [name, v.source]));
  assert.ok(binds.length >= 16, `bind mounts: ${binds.length}`);
  for (const [name, source] of binds) {
    assert.ok(existsSync(source), `${name} mounts ${source}, which does not exist`);
    assert.ok(!relative(root, source).startsWith('..'), `${name} mounts ${source}, outside the repository`);
  }
  // Everything else is a named volume of this project.
  for (const [name, s] of Object.entries(services)) {
    for (const v of (s.volumes || []).filter((m) => m.type !== 'bind')) {
      assert.equal(v.type, 'volume', name);
      assert.ok(v.source in volumes, `${name} mounts ${v.source}`);
    }
  }
  assert.equal(services.secrets.build.context, root);
});

test('The HA stack scales the workers with GALLERY_WORKERS', () => {
  assert.equal(config({ GALLERY_WORKERS: '5' }).services.worker.deploy.replicas, 5);
});
