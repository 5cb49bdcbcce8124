// The compose stack for real, as a new user runs it: the repository's tracked files are copied to
// a fresh directory (no .env, no target/), and the project's own `docker compose up -d --build`
// runs there unmodified, under a unique project name, publishing a free port. Then everything is
// checked through that port and from inside the containers; the stack, its volumes and its image
// are removed at the end whatever happened.
// The gallery starts without an account, as a new user's does: the suite makes the first one
// through the published port (POST /api/setup, as the page's first-run form does), then an API
// token, and sends that token with every API call of its own (`api()`); the browser logs in.
//
// Needs Docker and Compose v2: `../shared/docker/setup.sh` (run here first, as root; idempotent)
// installs them and the local stand-ins for the third-party images. Talks only to loopback and
// to the project's own containers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = process.env.GALLERY_SHARED_DIR || join(root, '..', 'shared');
const CHROMIUM = '/usr/bin/chromium';
const id = randomUUID().replaceAll('-', '').slice(0, 10);
const project = `gallerytest${id}`;
const imageTag = `compose-test-${id}`;
const APP = ['web', 'worker', 'notifier'];
const STORES = ['minio', 'redis', 'rabbitmq'];
const timings = [];
const note = (line) => {
  timings.push(line);
  console.log(line);
};

let dir; // the fresh copy
let base; // http://127.0.0.1:PORT, nginx's published port
let composeEnv;
let up = false;
let photos; // real photo files (../shared/photos/fetch.sh)

// ---- processes ----

function run(command, args, { cwd = root, env = process.env, input, timeoutS = 600 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (chunk) => out.push(chunk));
    child.stderr.on('data', (chunk) => err.push(chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: signal ? `killed (${signal}, after ${timeoutS}s?)` : code,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      });
    });
    if (input !== undefined) {
      child.stdin.on('error', () => {}); // a child that exits first just does not read it
      child.stdin.end(input);
    }
  });
}

async function must(command, args, options) {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.code}):\n${result.stdout.slice(-4000)}\n${result.stderr.slice(-4000)}`);
  }
  return result.stdout;
}

const compose = (...args) => must('docker', ['compose', '-p', project, ...args], { cwd: dir, env: composeEnv, timeoutS: 1800 });
const docker = (...args) => must('docker', args, { timeoutS: 300 });
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

/// Polls `check` (returns a truthy value when done) until `timeoutS`; fails with `describe()`.
async function until(what, timeoutS, check, describe = async () => '') {
  const deadline = Date.now() + timeoutS * 1000;
  for (;;) {
    // A failed assertion inside `check` ends the wait at once; other errors mean "not yet".
    const value = await check().catch((error) => {
      if (error instanceof assert.AssertionError) throw error;
      return null;
    });
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutS} s. ${await describe()}`);
    await pause(1000);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

// ---- the stack ----

/// `docker compose ps -a` as objects (Compose prints NDJSON or one array, by version).
async function containers() {
  const out = (await compose('ps', '-a', '--format', 'json')).trim();
  if (!out) return [];
  if (out.startsWith('[')) return JSON.parse(out);
  return out.split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

async function containersOf(service) {
  return (await containers()).filter((c) => c.Service === service);
}

async function inspect(idOrName) {
  return JSON.parse(await docker('inspect', idOrName))[0];
}

/// Every long-running service running and healthy (`scale` containers each), the one-shot
/// `secrets` service exited 0. Returns the time it took.
async function waitHealthy(timeoutS, scale = {}) {
  const started = Date.now();
  const expected = Object.fromEntries(['nginx', ...APP, ...STORES].map((s) => [s, scale[s] ?? 1]));
  let last = [];
  await until('every service healthy', timeoutS, async () => {
    last = await containers();
    const secrets = last.filter((c) => c.Service === 'secrets');
    if (secrets.length !== 1 || secrets[0].State !== 'exited' || secrets[0].ExitCode !== 0) return false;
    return Object.entries(expected).every(([service, count]) => {
      const mine = last.filter((c) => c.Service === service);
      return mine.length === count && mine.every((c) => c.State === 'running' && c.Health === 'healthy');
    });
  }, async () => {
    const table = last.map((c) => `${c.Name}: ${c.State} ${c.Health || ''} ${c.Status}`).join('\n');
    const logs = await run('docker', ['compose', '-p', project, 'logs', '--no-color', '--tail', '30'], { cwd: dir, env: composeEnv });
    return `\n${table}\n--- last logs ---\n${logs.stdout}${logs.stderr}`;
  });
  return Date.now() - started;
}

/// `docker compose up -d --build`, exactly the README's command, then every service healthy.
async function upAndHealthy(label, extraEnv = {}) {
  const started = Date.now();
  const saved = composeEnv;
  composeEnv = { ...composeEnv, ...extraEnv };
  try {
    await compose('up', '-d', '--build');
  } finally {
    composeEnv = saved;
  }
  up = true;
  const returned = Date.now();
  await waitHealthy(300);
  note(`${label}: \`up -d --build\` to every service healthy ${seconds(Date.now() - started)} (the command itself ${seconds(returned - started)})`);
}

// ---- the gallery's API through the published port ----

// The suite's own account, made the way a new user makes it (the first-run POST /api/setup),
// with fresh random values each run. The password is never printed.
const admin = { email: `admin-${id}@example.com`, name: 'Compose Admin', password: randomBytes(18).toString('base64url') };
let token; // the API token (`Authorization: Bearer`) every call of the suite's own carries
let session; // `gallery_session=…` as a Cookie header value, set by POST /api/setup

/// `fetch` through the published port, authenticated `as` the suite's token (the default), its
/// session cookie (as the page sends it), or anonymous. `json` is sent as a JSON body (POST
/// unless `method` says otherwise).
function api(path, { as = 'token', json, headers = {}, ...init } = {}) {
  const credentials = {
    token: token && { authorization: `Bearer ${token}` },
    session: session && { cookie: session },
    anonymous: {},
  }[as];
  assert.ok(credentials, `the suite has no ${as} credentials (yet)`);
  const body = json === undefined ? init.body : JSON.stringify(json);
  const type = json === undefined ? {} : { 'content-type': 'application/json' };
  const method = init.method ?? (json === undefined ? 'GET' : 'POST');
  return fetch(`${base}${path}`, { ...init, method, body, headers: { ...credentials, ...type, ...headers } });
}

/// The `gallery_session` cookie a response sets, as a Cookie header value.
function sessionCookie(response) {
  const cookies = response.headers.getSetCookie();
  const line = cookies.find((c) => c.startsWith('gallery_session='));
  assert.ok(line, `a gallery_session cookie is set (Set-Cookie: ${cookies.map((c) => c.split('=')[0])})`);
  const attributes = line.split(';').slice(1).map((a) => a.trim().toLowerCase());
  assert.ok(attributes.includes('httponly'), 'the session cookie is HttpOnly');
  assert.ok(attributes.includes('samesite=lax'), 'the session cookie is SameSite=Lax');
  assert.ok(attributes.includes('path=/'), 'the session cookie is for every path');
  assert.ok(!attributes.includes('secure'), 'plain http through the gateway: not Secure');
  return line.split(';')[0];
}

/// Status and error code of a refusal (the API's JSON error shape).
async function refusal(response) {
  const body = await response.json().catch(() => null);
  return [response.status, body?.code];
}

function jpegInfo(bytes) {
  // Start-of-frame: FFC0..FFCF except C4 (DHT), C8 (JPG), CC (DAC).
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) throw new Error(`not a JPEG marker at ${i}`);
    const marker = bytes[i + 1];
    const length = bytes.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      return { height: bytes.readUInt16BE(i + 5), width: bytes.readUInt16BE(i + 7), components: bytes[i + 9] };
    }
    i += 2 + length;
  }
  throw new Error('no JPEG frame header');
}

let rateLimited = 0; // 429s the gateway answered to this suite's own uploads

/// One file through the published port, as a polite client: on 429 it waits Retry-After and tries
/// again. Returns the final status (a network error as a string) and body.
async function upload(path, name, ops, as = 'token') {
  for (;;) {
    const form = new FormData();
    if (ops) form.append('ops', ops);
    form.append('file', new Blob([readFileSync(path)], { type: 'image/jpeg' }), name);
    try {
      const response = await api('/api/photos', { as, method: 'POST', body: form });
      const body = await response.json().catch(() => null);
      if (response.status === 429) {
        assert.equal(body?.code, 'rate_limited');
        rateLimited += 1;
        await pause(1000 * Number(response.headers.get('retry-after') || 1));
        continue;
      }
      return { status: response.status, body };
    } catch (error) {
      if (error instanceof assert.AssertionError) throw error;
      return { status: `network error: ${error.cause?.code || error.message}`, body: null };
    }
  }
}

async function photo(photoId) {
  const response = await api(`/api/photos/${photoId}`);
  assert.equal(response.status, 200, `GET /api/photos/${photoId}`);
  return response.json();
}

async function bytesOf(path) {
  const response = await api(path);
  assert.equal(response.status, 200, `GET ${path}`);
  return Buffer.from(await response.arrayBuffer());
}

/// Every id ends `done` (none `failed`) within `timeoutS`.
async function waitDone(ids, timeoutS) {
  const status = new Map();
  await until(`${ids.length} photos done`, timeoutS, async () => {
    for (const photoId of ids) {
      if (status.get(photoId) === 'done') continue;
      const response = await api(`/api/photos/${photoId}`);
      if (response.status !== 200) {
        status.set(photoId, `HTTP ${response.status}`);
        continue;
      }
      const body = await response.json();
      status.set(photoId, body.status);
      if (body.status === 'failed') assert.fail(`photo ${photoId} failed: ${body.error}`);
    }
    return ids.every((photoId) => status.get(photoId) === 'done');
  }, async () => JSON.stringify(Object.fromEntries(status)));
}

/// All photos, newest first, following the cursor.
async function listAll() {
  const all = [];
  let cursor = null;
  for (;;) {
    const query = cursor ? `?limit=100&cursor=${encodeURIComponent(cursor)}` : '?limit=100';
    const response = await api(`/api/photos${query}`);
    assert.equal(response.status, 200);
    const page = await response.json();
    all.push(...page.photos);
    cursor = page.next_cursor;
    if (!cursor) return all;
  }
}

/// Uploads `files` with `parallel` requests at a time into `results` until `keepGoing()` turns
/// false. Statuses other than 202 are allowed here (a store may be restarting).
async function uploadWhile(files, parallel, results, keepGoing) {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (keepGoing()) {
      const n = next++;
      const file = files[n % files.length];
      const result = await upload(file, `load-${n}-${file.split('/').pop()}`);
      results.push(result);
      if (result.status !== 202) await pause(300);
    }
  }));
}

const accepted = (results) => results.filter((r) => r.status === 202).flatMap((r) => r.body.photos.map((p) => p.id));

function tally(statuses) {
  const counts = {};
  for (const s of statuses) counts[s] = (counts[s] || 0) + 1;
  return JSON.stringify(counts);
}

// ---- set-up and tear-down ----

before(async () => {
  assert.ok(existsSync(join(shared, 'docker', 'setup.sh')),
    `${shared}/docker/setup.sh is missing: the compose suite needs the shared Docker set-up next to the repository (or GALLERY_SHARED_DIR)`);
  assert.equal(process.getuid?.(), 0, 'the compose suite runs ../shared/docker/setup.sh, which needs root: run `make test` as root');
  const setupStarted = Date.now();
  await must('bash', [join(shared, 'docker', 'setup.sh')], { timeoutS: 1800 });
  note(`../shared/docker/setup.sh: ${seconds(Date.now() - setupStarted)}`);
  photos = (await must('bash', [join(shared, 'photos', 'fetch.sh'), join(root, 'target', 'photos')], { timeoutS: 900 }))
    .trim().split('\n').pop();

  // A fresh copy of what a clone holds: tracked (and new, not ignored) files, no .env, no target/.
  dir = mkdtempSync(join(tmpdir(), 'gallery-compose-'));
  const listed = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard']);
  assert.equal(listed.code, 0, `the compose suite copies the files git tracks, but git ls-files failed: ${listed.stderr}`);
  const files = listed.stdout.split('\0').filter(Boolean);
  let copied = 0;
  for (const file of files) {
    const from = join(root, file);
    if (!existsSync(from) || !statSync(from).isFile()) continue; // deleted in the working tree
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    copyFileSync(from, join(dir, file));
    chmodSync(join(dir, file), statSync(from).mode & 0o777);
    copied += 1;
  }
  assert.ok(!existsSync(join(dir, '.env')), 'the copy must not hold a .env');
  console.log(`${copied} files copied to ${dir}; project ${project}`);

  // Nothing from this shell's environment may configure the stack: only what a new user has.
  composeEnv = Object.fromEntries(Object.entries(process.env)
    .filter(([name]) => !/^(GALLERY_|MINIO_|REDIS|RABBITMQ_|WORKER_|COMPOSE_)/.test(name)));
  const port = await freePort();
  composeEnv.GALLERY_PORT = String(port);
  composeEnv.GALLERY_VERSION = imageTag; // the compose file's own knob: a tag of our own to remove
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  if (dir) {
    const down = await run('docker', ['compose', '-p', project, 'down', '-v', '--remove-orphans', '--timeout', '70'],
      { cwd: dir, env: composeEnv, timeoutS: 300 });
    if (down.code !== 0) console.log(`down -v failed: ${down.stderr}`);
    // Untag only; the layers stay in the build cache for the next run.
    await run('docker', ['image', 'rm', '--no-prune', `gallery:${imageTag}`]);
    const left = await run('docker', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`]);
    const volumes = await run('docker', ['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`]);
    if (left.stdout.trim() || volumes.stdout.trim()) console.log(`left behind: ${left.stdout} ${volumes.stdout}`);
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`the gateway rate-limited ${rateLimited} of this suite's own uploads (each retried)`);
  console.log(`---- timings ----\n${timings.map((t) => `  ${t}`).join('\n')}`);
});

// ---- the tests, in order: each builds on the stack the previous one left ----

test('a fresh copy comes up with the one command, every service healthy, one image built', { timeout: 40 * 60_000 }, async () => {
  const danglingBefore = new Set((await docker('images', '-q', '--filter', 'dangling=true')).split('\n').filter(Boolean));
  await upAndHealthy('first start (build cache as this machine has it)');
  const images = (await docker('images', '-q', '--filter', `reference=gallery:${imageTag}`)).split('\n').filter(Boolean);
  assert.equal(images.length, 1, `one gallery image tagged: ${images}`);
  const used = new Set();
  for (const c of await containers()) {
    if (['secrets', ...APP].includes(c.Service)) used.add((await inspect(c.ID)).Image);
  }
  assert.equal(used.size, 1, `every gallery container runs the same image: ${[...used]}`);
  const danglingAfter = (await docker('images', '-q', '--filter', 'dangling=true')).split('\n').filter(Boolean);
  const newDangling = danglingAfter.filter((image) => !danglingBefore.has(image));
  assert.deepEqual(newDangling, [], 'the build left untagged images behind');
  // Only the names of the files it wrote, never a value.
  const secretsLog = await compose('logs', '--no-color', 'secrets');
  assert.match(secretsLog, /secrets: wrote s3_access_key s3_secret_key redis_password rabbitmq_password redis_url amqp_url/);
});

test('first run through the published port: nothing open anonymously, POST /api/setup once, then a token', { timeout: 5 * 60_000 }, async () => {
  // The page itself and its configuration are open (the page shows the first-run form).
  const page = await api('/', { as: 'anonymous' });
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<script/);
  const setupRequired = async () => {
    const config = await api('/api/config', { as: 'anonymous' });
    assert.equal(config.status, 200, 'GET /api/config is open');
    return (await config.json()).setup_required;
  };
  assert.equal(await setupRequired(), true, 'a fresh gallery asks for its first account');
  // Everything else refuses anonymous callers, also before any account exists.
  for (const [method, path] of [['GET', '/api/photos'], ['GET', '/api/events'], ['GET', '/api/session'], ['GET', '/api/me'],
    ['GET', '/api/users'], ['GET', '/api/tokens'], ['POST', '/api/tokens']]) {
    const response = await api(path, { as: 'anonymous', method, ...(method === 'POST' ? { json: { name: 'x' } } : {}) });
    assert.deepEqual(await refusal(response), [401, 'unauthorized'], `anonymous ${method} ${path}`);
  }
  // A made-up token is no better.
  assert.deepEqual(await refusal(await api('/api/photos', { as: 'anonymous', headers: { authorization: `Bearer ${randomBytes(32).toString('hex')}` } })),
    [401, 'unauthorized'], 'GET /api/photos with an unknown token');

  // The first account, as the page's first-run form makes it: too short a password is refused.
  const weak = await api('/api/setup', { as: 'anonymous', json: { ...admin, password: 'short' } });
  assert.deepEqual(await refusal(weak), [400, 'weak_password'], 'POST /api/setup with a 5-character password');
  assert.equal(await setupRequired(), true, 'still no account after a refused setup');
  const setup = await api('/api/setup', { as: 'anonymous', json: admin });
  assert.equal(setup.status, 201, `POST /api/setup: ${await setup.clone().text()}`);
  session = sessionCookie(setup);
  const { user } = await setup.json();
  assert.equal(user.email, admin.email);
  assert.equal(user.name, admin.name);
  assert.equal(user.role, 'admin', 'the first account is an admin');
  assert.equal(await setupRequired(), false, 'setup_required once the first account exists');
  const again = await api('/api/setup', { as: 'anonymous', json: { email: `second-${id}@example.com`, name: 'Second', password: randomBytes(18).toString('base64url') } });
  assert.deepEqual(await refusal(again), [409, 'already_set_up'], 'a second POST /api/setup');

  // The cookie works through the gateway.
  const current = await api('/api/session', { as: 'session' });
  assert.equal(current.status, 200, 'GET /api/session with the cookie');
  assert.equal((await current.json()).user.email, admin.email);
  // A change by cookie from another site's page is refused; from the gallery's own page (its
  // Origin is the published address, which nginx passes on as Host, port and all) it works.
  const crossSite = await api('/api/tokens', { as: 'session', json: { name: 'evil' }, headers: { origin: 'https://evil.example' } });
  assert.deepEqual(await refusal(crossSite), [403, 'cross_origin'], 'cookie POST /api/tokens with a foreign Origin');
  const created = await api('/api/tokens', { as: 'session', json: { name: 'compose suite' }, headers: { origin: base } });
  assert.equal(created.status, 201, `POST /api/tokens with Origin ${base}: ${await created.clone().text()}`);
  const made = await created.json();
  assert.equal(made.name, 'compose suite');
  assert.ok(typeof made.token === 'string' && made.token.length >= 20, 'a token comes back');
  token = made.token;
  // From here on every call of the suite's own carries the token.
  const me = await api('/api/me');
  assert.equal(me.status, 200, 'GET /api/me with the token');
  assert.equal((await me.json()).email, admin.email);
  const tokens = await (await api('/api/tokens')).json();
  assert.deepEqual(tokens.tokens.map((t) => t.name), ['compose suite'], 'one token, the one refused cross-site was never made');
  assert.ok(!JSON.stringify(tokens).includes(token), 'a token is shown only once');
});

test('the page and an upload with ops, through the published port only; nothing served anonymously', { timeout: 5 * 60_000 }, async () => {
  const original = join(photos, 'real', 'Autumn.jpg'); // 2560×1600
  const { width, height } = jpegInfo(readFileSync(original));
  // Uploading needs an account too (a small body: refused before it is read).
  const small = join(mkdtempSync(join(tmpdir(), 'gallery-small-')), 'small.jpg');
  writeFileSync(small, readFileSync(original).subarray(0, 2048));
  const anonymous = await upload(small, 'small.jpg', null, 'anonymous');
  rmSync(dirname(small), { recursive: true, force: true });
  assert.equal(anonymous.status, 401, `anonymous upload: ${JSON.stringify(anonymous.body)}`);
  assert.equal(anonymous.body?.code, 'unauthorized');
  const result = await upload(original, 'Autumn.jpg', 'rotate90,grayscale');
  assert.equal(result.status, 202, JSON.stringify(result.body));
  const photoId = result.body.photos[0].id;
  await waitDone([photoId], 120);
  const done = await photo(photoId);
  assert.deepEqual(done.ops, ['rotate90', 'grayscale']);
  // Turned a quarter: portrait now, longest side 1280 and 320, never upscaled.
  for (const [name, side] of [['preview', 1280], ['thumb', 320]]) {
    const variant = done.variants[name];
    const bytes = await bytesOf(variant.url);
    const info = jpegInfo(bytes);
    const expected = { width: Math.round((height * side) / width), height: side };
    assert.ok(Math.abs(info.width - expected.width) <= 1 && info.height === expected.height,
      `${name}: ${info.width}×${info.height}, expected ${expected.width}×${expected.height}`);
    assert.equal(variant.width, info.width);
    assert.equal(variant.height, info.height);
    assert.equal(info.components, 1, `${name} is grayscale`);
  }
  const stored = await bytesOf(done.original_url);
  assert.equal(createHash('sha256').update(stored).digest('hex'), createHash('sha256').update(readFileSync(original)).digest('hex'));
  assert.equal(done.owner?.name, admin.name, 'the photo names its uploader');

  // Private bytes: a browser may keep them, no shared cache may. An anonymous GET of a variant
  // someone just loaded through the gateway is refused, not served from anywhere.
  const thumbUrl = done.variants.thumb.url;
  const loaded = await api(thumbUrl);
  assert.equal(loaded.status, 200, `GET ${thumbUrl}`);
  await loaded.arrayBuffer();
  assert.match(loaded.headers.get('cache-control') ?? '', /^private\b/, `Cache-Control of ${thumbUrl}`);
  for (const path of [thumbUrl, done.variants.preview.url, done.original_url, `/api/photos/${photoId}`]) {
    assert.deepEqual(await refusal(await api(path, { as: 'anonymous' })), [401, 'unauthorized'], `anonymous GET ${path}`);
  }
  assert.deepEqual(await refusal(await api(`/api/photos/${photoId}`, { as: 'anonymous', method: 'DELETE' })),
    [401, 'unauthorized'], 'anonymous DELETE');
  assert.equal((await photo(photoId)).status, 'done', 'still there after the anonymous DELETE');

  // A deleted photo is gone at once, also from the gateway: nothing is served from a cache.
  await bytesOf(thumbUrl);
  assert.equal((await api(`/api/photos/${photoId}`, { method: 'DELETE' })).status, 204);
  for (const url of [thumbUrl, done.variants.preview.url, done.original_url]) {
    assert.equal((await api(url)).status, 404, `${url} after DELETE`);
  }
});

test('three workers share the jobs', { timeout: 10 * 60_000 }, async () => {
  await compose('up', '-d', '--scale', 'worker=3');
  await waitHealthy(180, { worker: 3 });
  const files = readdirSync(join(photos, 'real')).filter((f) => f.endsWith('.jpg')).map((f) => join(photos, 'real', f));
  const ids = [];
  await Promise.all([0, 1, 2].map(async (lane) => {
    for (let n = lane; n < 24; n += 3) {
      const result = await upload(files[n % files.length], `shared-${n}.jpg`);
      assert.equal(result.status, 202, JSON.stringify(result.body));
      ids.push(result.body.photos[0].id);
    }
  }));
  await waitDone(ids, 300);
  const share = {};
  for (const c of await containersOf('worker')) {
    const { stdout, stderr } = await run('docker', ['logs', c.ID]);
    const lines = `${stdout}\n${stderr}`.split('\n').filter((l) => l.includes('job finished'));
    share[c.Name] = ids.filter((photoId) => lines.some((l) => l.includes(photoId))).length;
  }
  console.log(`jobs per worker: ${JSON.stringify(share)}`);
  assert.equal(Object.keys(share).length, 3);
  assert.ok(Object.values(share).filter((n) => n > 0).length >= 2, `jobs shared: ${JSON.stringify(share)}`);
  assert.ok(Object.values(share).reduce((a, b) => a + b, 0) >= ids.length, `every job logged as finished: ${JSON.stringify(share)}`);
});

for (const store of ['rabbitmq', 'redis']) {
  test(`\`restart ${store}\` mid-upload: every accepted photo ends done`, { timeout: 10 * 60_000 }, async () => {
    const files = readdirSync(join(photos, 'real')).filter((f) => f.endsWith('.jpg')).map((f) => join(photos, 'real', f));
    const results = [];
    let restartedAt = null; // index into results when the restart was over
    let stopBy = Date.now() + 180_000;
    const uploading = uploadWhile(files, 2, results, () => Date.now() < stopBy
      && (restartedAt === null || accepted(results.slice(restartedAt)).length < 4));
    try {
      await until('a few uploads accepted before the restart', 60, async () => accepted(results).length >= 3);
      const started = Date.now();
      await compose('restart', store);
      note(`\`restart ${store}\` with uploads running: ${seconds(Date.now() - started)}`);
      restartedAt = results.length;
    } finally {
      if (restartedAt === null) stopBy = 0; // failed: stop uploading
      await uploading;
    }
    const ids = accepted(results);
    console.log(`uploads around the ${store} restart: ${tally(results.map((r) => r.status))}`);
    assert.ok(accepted(results.slice(restartedAt)).length >= 4, `uploads are accepted again after the restart: ${tally(results.slice(restartedAt).map((r) => r.status))}`);
    await waitDone(ids, 300);
    await waitHealthy(180, { worker: 3 });
  });
}

test('Chromium drops 60 real photos through the published port: all 60 done, no error shown', { timeout: 20 * 60_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), 'Chromium is missing: run `make test-deps` (apt-get install chromium)');
  const require = createRequire(join(root, 'tests', 'browser', 'package.json'));
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch {
    assert.fail('playwright-core is missing: run `make test-deps` (npm ci in tests/browser)');
  }
  // 60 distinct names from the real photos (wallpapers and 12/50 MP camera files), reused in turn.
  const sources = ['real', 'camera'].flatMap((set) => readdirSync(join(photos, set))
    .filter((f) => f.endsWith('.jpg')).sort().map((f) => join(photos, set, f)));
  const dropDir = mkdtempSync(join(tmpdir(), 'gallery-drop-'));
  const names = [];
  try {
    for (let n = 0; n < 60; n++) {
      const name = `drop-${String(n).padStart(2, '0')}-${sources[n % sources.length].split('/').pop()}`;
      copyFileSync(sources[n % sources.length], join(dropDir, name));
      names.push(name);
    }
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    try {
      // Logged out, the page shows a login form (whatever its markup: a password field) and
      // nothing of the gallery; a variant URL typed in directly is refused.
      const stranger = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
      const outside = await stranger.newPage();
      await outside.goto(base);
      await outside.locator('input[type=password]:visible').first().waitFor({ timeout: 30_000 });
      assert.equal(await outside.locator('#drop').isVisible(), false, 'the upload area is hidden when logged out');
      assert.equal(await outside.locator('#grid li.tile').count(), 0, 'no photo tile when logged out');
      const [somePhoto] = (await listAll()).filter((p) => p.status === 'done');
      const refused = await stranger.request.get(`${base}${somePhoto.variants.thumb.url}`);
      assert.equal(refused.status(), 401, 'a variant URL opened in a logged-out browser');
      await stranger.close();

      // Logged in by the API (so this test does not depend on the login form's markup): the
      // context keeps the session cookie, and the page opens with the upload UI as before.
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
      const login = await context.request.post(`${base}/api/session`, { data: { email: admin.email, password: admin.password } });
      assert.equal(login.status(), 200, `POST /api/session from the browser context: ${await login.text()}`);
      const page = await context.newPage();
      const problems = [];
      page.on('console', (message) => {
        // Chromium logs every 429 it receives; the page handles those by waiting and retrying.
        if (message.type() === 'error' && !/status of 429/.test(message.text())) problems.push(message.text());
      });
      page.on('pageerror', (error) => problems.push(error.message));
      const statuses = [];
      page.on('response', (response) => {
        if (response.request().method() === 'POST' && response.url().endsWith('/api/photos')) statuses.push(response.status());
      });
      await page.goto(base);
      await page.waitForFunction(() => document.getElementById('drop-hint').textContent.includes('MB'));
      assert.equal(await page.locator('#upload input[type=email]').count(), 0, 'the upload form asks for no address any more');
      const started = Date.now();
      await page.setInputFiles('#files', names.map((name) => join(dropDir, name)));
      // Every file gets its tile, and every tile ends `done`; no upload row shows an error.
      let shown = {};
      await until('60 tiles done on the page', 15 * 60, async () => {
        shown = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#grid li.tile')]
          .map((e) => [e.querySelector('.name')?.textContent, e.dataset.status])));
        const errors = await page.locator('#uploads li.error').allTextContents();
        assert.deepEqual(errors, [], 'upload errors shown on the page');
        return names.every((name) => shown[name] === 'done');
      }, async () => {
        await page.screenshot({ path: join(root, 'target', 'compose-drop.png'), fullPage: true }).catch(() => {});
        const missing = names.filter((name) => shown[name] !== 'done').map((name) => `${name}: ${shown[name] ?? 'no tile'}`);
        return `not done on the page (screenshot: target/compose-drop.png): ${missing.join(', ')}; POST statuses ${tally(statuses)}`;
      });
      const errors = await page.locator('#uploads li.error').allTextContents();
      assert.deepEqual(errors, [], 'upload errors shown on the page');
      note(`60 photos dropped in Chromium: all done in ${seconds(Date.now() - started)}; POST statuses ${tally(statuses)}`);
      assert.equal(statuses.filter((s) => s === 202).length, 60, `one accepted POST per photo: ${tally(statuses)}`);
      assert.ok(statuses.every((s) => s === 202 || s === 429), `only 202s and 429s: ${tally(statuses)}`);
      assert.deepEqual(problems, [], 'console errors');
    } finally {
      await browser.close();
    }
    // And the server agrees.
    const listed = new Map((await listAll()).map((p) => [p.filename, p.status]));
    for (const name of names) assert.equal(listed.get(name), 'done', name);
  } finally {
    rmSync(dropDir, { recursive: true, force: true });
  }
});

/// An /api/events stream through nginx, as an open page has (by its session cookie). `ended`
/// settles when it closes.
async function openEvents() {
  const controller = new AbortController();
  const response = await api('/api/events', { as: 'session', signal: controller.signal });
  assert.equal(response.status, 200, 'GET /api/events with the session cookie');
  const reader = response.body.getReader();
  const first = await reader.read();
  assert.match(Buffer.from(first.value).toString(), /connected/);
  const ended = (async () => {
    try {
      for (;;) if ((await reader.read()).done) return 'closed';
    } catch (error) {
      return `error: ${error.message}`;
    }
  })();
  return { ended, close: () => controller.abort() };
}

/// `docker compose stop SERVICE...`: each of its containers exits 0, within its grace period.
async function stopAndCheck(services, label) {
  const before = (await containers()).filter((c) => services.length === 0 || services.includes(c.Service));
  const started = Date.now();
  await compose('stop', ...services);
  const took = Date.now() - started;
  const rows = [];
  for (const c of before) {
    if (c.Service === 'secrets') continue;
    const info = await inspect(c.ID);
    const stoppedAfter = Date.parse(info.State.FinishedAt) - started;
    const grace = { web: 15, worker: 60, notifier: 30 }[c.Service] ?? 10;
    rows.push(`${c.Service} ${seconds(stoppedAfter)} exit ${info.State.ExitCode}`);
    if (['nginx', ...APP].includes(c.Service)) {
      assert.equal(info.State.ExitCode, 0, `${c.Name} exit code (${info.State.Error || 'no error'})`);
      assert.ok(stoppedAfter < grace * 1000, `${c.Name} stopped after ${seconds(stoppedAfter)}, grace ${grace} s`);
    }
  }
  note(`${label}: ${seconds(took)} for the command; each container stopped after: ${rows.join(', ')}`);
}

test('stops are clean: web with pages open, workers with jobs in flight, then the whole stack', { timeout: 15 * 60_000 }, async () => {
  // web alone, with two pages' event streams open through nginx.
  const pages = [await openEvents(), await openEvents()];
  await stopAndCheck(['web'], '`stop web` with 2 event streams open');
  for (const events of pages) {
    assert.ok(await Promise.race([events.ended, pause(5000).then(() => false)]), 'the event stream ended when web stopped');
  }
  await compose('start', 'web');
  await waitHealthy(180, { worker: 3 });

  // The workers, with jobs in flight (50 MP camera files take a moment each).
  const big = readdirSync(join(photos, 'camera')).filter((f) => f.endsWith('.jpg')).map((f) => join(photos, 'camera', f));
  const ids = [];
  for (let n = 0; n < 12; n++) {
    const result = await upload(big[n % big.length], `inflight-${n}.jpg`);
    assert.equal(result.status, 202, JSON.stringify(result.body));
    ids.push(result.body.photos[0].id);
  }
  await until('a job in flight', 60, async () => {
    for (const photoId of ids) if ((await photo(photoId)).status === 'processing') return true;
    return false;
  });
  await stopAndCheck(['worker'], '`stop worker` (3 workers) with jobs in flight');
  await compose('start', 'worker');
  await waitDone(ids, 300); // finished and acked before the stop, or delivered again after it: none lost
  await waitHealthy(180, { worker: 3 });

  // Everything at once, with a page open and jobs queued.
  const events = await openEvents();
  for (let n = 0; n < 4; n++) assert.equal((await upload(big[n % big.length], `queued-${n}.jpg`)).status, 202);
  await stopAndCheck([], '`docker compose stop` (everything, a page open, jobs queued)');
  assert.ok(await Promise.race([events.ended, pause(5000).then(() => false)]), 'the event stream ended');
});

test('logs: no ANSI colour codes, no secret (the stores\', the account\'s); no secret in any container\'s configuration', { timeout: 5 * 60_000 }, async () => {
  // The stack is stopped here; the secrets volume is read by a throwaway container of our image.
  const volume = `${project}_secrets`;
  const listing = await docker('run', '--rm', '--network', 'none', '--entrypoint', 'sh', '-v', `${volume}:/s:ro`,
    `gallery:${imageTag}`, '-c', 'for f in /s/*; do printf "%s=%s\\n" "${f##*/}" "$(cat "$f")"; done');
  const secrets = Object.fromEntries(listing.trim().split('\n').map((line) => line.split(/=(.*)/s).slice(0, 2)));
  for (const name of ['s3_access_key', 's3_secret_key', 'redis_password', 'rabbitmq_password']) {
    assert.match(secrets[name] ?? '', /^[A-Za-z0-9]{32}$/, `${name} is 32 random letters and digits`);
  }
  const names = ['s3_access_key', 's3_secret_key', 'redis_password', 'rabbitmq_password', 'the admin\'s password',
    'the API token', 'the session cookie'];
  const values = [...['s3_access_key', 's3_secret_key', 'redis_password', 'rabbitmq_password'].map((n) => secrets[n]),
    admin.password, token, session.split('=')[1]];
  // Each container's own output, exactly as the process wrote it. (`docker compose logs` adds an
  // erase-line code of its own in front of lines in Compose 2.26, even with --no-color.)
  const lines = [];
  for (const c of await containers()) {
    const { stdout, stderr } = await run('docker', ['logs', c.ID]);
    lines.push(...`${stdout}\n${stderr}`.split('\n').map((line) => `${c.Service}| ${line}`));
  }
  assert.ok(lines.length > 200, `logs were read (${lines.length} lines)`);
  // Lines are shown redacted, so that a failure does not print a secret itself.
  const redact = (line) => values.reduce((l, value) => l.replaceAll(value, '<SECRET>'), line);
  for (const [i, name] of names.entries()) {
    const leaks = lines.filter((line) => line.includes(values[i]));
    assert.deepEqual(leaks.slice(0, 5).map(redact), [], `${leaks.length} log lines show ${name}`);
  }
  const ansi = lines.filter((line) => line.includes('\u001b'));
  assert.deepEqual(ansi.slice(0, 5).map(redact), [], `${ansi.length} log lines carry ANSI codes`);
  for (const c of await containers()) {
    const config = JSON.stringify((await inspect(c.ID)).Config);
    for (const [i, value] of values.entries()) assert.ok(!config.includes(value), `${names[i]} is in ${c.Name}'s configuration`);
  }
});

test('down keeps every photo and the account; nothing anonymous is left; up again (warm build, a notification channel set, the headless admin ignored)', { timeout: 20 * 60_000 }, async () => {
  // Every volume any container mounts is one of the project's named volumes.
  const named = new Set(['secrets', 'minio-data', 'redis-data', 'rabbitmq-data'].map((v) => `${project}_${v}`));
  for (const c of await containers()) {
    for (const mount of (await inspect(c.ID)).Mounts.filter((m) => m.Type === 'volume')) {
      assert.ok(named.has(mount.Name), `${c.Name} mounts an anonymous volume at ${mount.Destination}`);
    }
  }
  await compose('start');
  await waitHealthy(180, { worker: 3 });
  // The photos queued before the stop are processed now; wait for them, then take stock.
  await waitDone((await listAll()).map((p) => p.id), 300);
  const before = await listAll();
  assert.ok(before.length >= 60, `${before.length} photos before down`);
  const sample = before.filter((p) => p.status === 'done').slice(0, 5);
  const variantBytes = [];
  for (const p of sample) variantBytes.push(await bytesOf((await photo(p.id)).variants.thumb.url));

  await compose('down');
  const volumes = (await docker('volume', 'ls', '-q')).split('\n');
  for (const volume of named) assert.ok(volumes.includes(volume), `${volume} survives down`);

  // Some notification channels set, others empty: the notifier is healthy all the same. And the
  // headless first-admin settings, which count only while the gallery has no account: it has one.
  const headless = { email: `headless-${id}@example.com`, password: randomBytes(18).toString('base64url') };
  await upAndHealthy('again after down (warm build)', {
    GALLERY_SMTP_URL: 'smtp://127.0.0.1:2525', GALLERY_SMTP_FROM: 'gallery@localhost', GALLERY_TELEGRAM_TOKEN: '',
    GALLERY_ADMIN_EMAIL: headless.email, GALLERY_ADMIN_PASSWORD: headless.password,
  });

  // The account outlives down/up: the token, the session the cookie holds, and a new login with
  // the same password.
  const me = await api('/api/me');
  assert.equal(me.status, 200, 'GET /api/me with the token made before down');
  assert.equal((await me.json()).email, admin.email);
  const kept = await api('/api/session', { as: 'session' });
  assert.equal(kept.status, 200, 'GET /api/session with the cookie from before down');
  const login = await api('/api/session', { as: 'anonymous', json: { email: admin.email, password: admin.password } });
  assert.equal(login.status, 200, `POST /api/session after down/up: ${await login.clone().text()}`);
  assert.equal((await login.json()).user.email, admin.email);
  const fresh = await api('/api/session', { as: 'anonymous', headers: { cookie: sessionCookie(login) } });
  assert.equal(fresh.status, 200, 'GET /api/session with the new cookie');
  const wrong = await api('/api/session', { as: 'anonymous', json: { email: admin.email, password: `${admin.password}x` } });
  assert.deepEqual(await refusal(wrong), [401, 'bad_credentials'], 'POST /api/session with a wrong password');
  const config = await (await api('/api/config', { as: 'anonymous' })).json();
  assert.equal(config.setup_required, false, 'setup_required after down/up');
  // The headless settings reached web, and changed nothing: no second admin, no login with them.
  const [web] = await containersOf('web');
  assert.ok((await inspect(web.ID)).Config.Env.includes(`GALLERY_ADMIN_EMAIL=${headless.email}`), 'GALLERY_ADMIN_EMAIL reaches web');
  const users = await (await api('/api/users')).json();
  assert.deepEqual(users.users.map((u) => [u.email, u.role]), [[admin.email, 'admin']], 'the people after up with GALLERY_ADMIN_*');
  const ignored = await api('/api/session', { as: 'anonymous', json: headless });
  assert.deepEqual(await refusal(ignored), [401, 'bad_credentials'], 'logging in as the ignored headless admin');
  const webLog = await run('docker', ['logs', web.ID]);
  assert.doesNotMatch(`${webLog.stdout}${webLog.stderr}`, /first admin created/, 'web created no admin');

  const after = await listAll();
  assert.deepEqual(after.map((p) => [p.id, p.status]), before.map((p) => [p.id, p.status]));
  for (const [i, p] of sample.entries()) {
    assert.ok((await bytesOf((await photo(p.id)).variants.thumb.url)).equals(variantBytes[i]), `thumb of ${p.id} unchanged`);
  }
  const secretsLog = await compose('logs', '--no-color', 'secrets');
  assert.match(secretsLog, /secrets: all present, nothing changed/);
});

test('networks: only nginx publishes a port; web, worker and the stores have no way out; the notifier has one', { timeout: 5 * 60_000 }, async () => {
  const networks = {};
  for (const name of ['ingress', 'frontend', 'backend', 'egress']) {
    networks[name] = JSON.parse(await docker('network', 'inspect', `${project}_${name}`))[0];
  }
  assert.equal(networks.frontend.Internal, true, 'frontend is internal');
  assert.equal(networks.backend.Internal, true, 'backend is internal');
  assert.equal(networks.egress.Internal, false, 'egress reaches out');
  assert.equal(networks.ingress.Options['com.docker.network.bridge.enable_ip_masquerade'], 'false', 'ingress has no NAT');
  // And the host agrees: Docker masquerades egress's subnet (a way out), not ingress's.
  const nat = await must('iptables', ['-t', 'nat', '-S', 'POSTROUTING']);
  const masqueraded = (name) => networks[name].IPAM.Config.some((c) => nat.split('\n')
    .some((rule) => rule.includes(`-s ${c.Subnet} `) && rule.includes('MASQUERADE')));
  assert.equal(masqueraded('egress'), true, `egress is masqueraded:\n${nat}`);
  assert.equal(masqueraded('ingress'), false, `ingress is masqueraded:\n${nat}`);
  const expected = {
    nginx: ['frontend', 'ingress'], web: ['backend', 'frontend'], worker: ['backend'], notifier: ['backend', 'egress'],
    minio: ['backend'], redis: ['backend'], rabbitmq: ['backend'],
  };
  const byService = {};
  for (const c of (await containers()).filter((c) => c.State === 'running')) {
    const info = await inspect(c.ID);
    byService[c.Service] = info;
    const joined = Object.keys(info.NetworkSettings.Networks).map((n) => n.replace(`${project}_`, '')).sort();
    assert.deepEqual(joined, expected[c.Service], `${c.Service}'s networks`);
    const published = Object.values(info.NetworkSettings.Ports || {}).filter(Boolean).flat();
    if (c.Service === 'nginx') assert.deepEqual([...new Set(published.map((p) => p.HostPort))], [base.split(':').pop()]);
    else assert.deepEqual(published, [], `${c.Service} publishes a port`);
  }
  // A way out, judged without sending a packet anywhere: the notifier has a default route (and
  // egress is masqueraded, above). Internal networks: Docker's isolation rule on the host drops
  // whatever their bridge would forward anywhere but its own subnet. (Docker 20.10 still gives a
  // container on an internal network a default route; that rule is what makes it lead nowhere.)
  const routes = async (service) => (await compose('exec', '-T', service, 'cat', '/proc/net/route'))
    .split('\n').slice(1).filter((line) => line.split(/\s+/)[1] === '00000000');
  assert.ok((await routes('notifier')).length > 0, 'the notifier has a route out');
  const filter = await must('iptables', ['-S']);
  assert.ok(filter.includes('-A FORWARD -j DOCKER-ISOLATION-STAGE-1'), `forwarding passes Docker's isolation rules:\n${filter}`);
  assert.ok(!/-A DOCKER-USER .*-j ACCEPT/.test(filter), `DOCKER-USER lets traffic past the isolation rules:\n${filter}`);
  for (const name of ['frontend', 'backend']) {
    const bridge = networks[name].Options['com.docker.network.bridge.name'] || `br-${networks[name].Id.slice(0, 12)}`;
    for (const { Subnet } of networks[name].IPAM.Config) {
      assert.ok(filter.includes(`-A DOCKER-ISOLATION-STAGE-1 ! -d ${Subnet} -i ${bridge} -j DROP`),
        `nothing leaves ${name} (${bridge}, ${Subnet}):\n${filter}`);
      assert.ok(!nat.split('\n').some((rule) => rule.includes(`-s ${Subnet} `)), `${name} is masqueraded`);
    }
  }
  for (const service of ['web', 'worker', 'minio', 'redis', 'rabbitmq']) {
    const internal = Object.keys(byService[service].NetworkSettings.Networks)
      .every((n) => networks[n.replace(`${project}_`, '')]?.Internal === true);
    assert.ok(internal, `${service} joins only internal networks`);
  }
  // Reachability, tried from inside each container's own network stack (a throwaway container of
  // our image joins it, so the check does not depend on what tools each image has). Names must
  // connect where the README says; elsewhere even the target's addresses must not.
  const connects = async (service, host, port) => (await run('docker', ['run', '--rm', '--network',
    `container:${byService[service].Id}`, '--entrypoint', 'bash', `gallery:${imageTag}`, '-c',
    `timeout 5 bash -c 'exec 3<>/dev/tcp/${host}/${port}'`])).code === 0;
  const addresses = (service) => Object.values(byService[service].NetworkSettings.Networks).map((n) => n.IPAddress);
  for (const [host, port] of [['redis', 6379], ['rabbitmq', 5672], ['minio', 9000]]) {
    assert.ok(await connects('web', host, port), `web reaches ${host}`);
    for (const address of addresses(host)) {
      assert.equal(await connects('nginx', address, port), false, `nginx reaches ${host} at ${address}`);
    }
  }
  assert.ok(await connects('nginx', 'web', 8080), 'nginx reaches web');
  for (const address of addresses('nginx')) {
    assert.equal(await connects('worker', address, 80), false, `worker reaches nginx at ${address}`);
  }
  assert.ok(await connects('notifier', 'rabbitmq', 5672), 'the notifier reaches rabbitmq');
});
