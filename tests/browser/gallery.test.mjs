// The gallery page in real headless Chromium against the real web and worker roles (Redis,
// RabbitMQ and the S3 test server on loopback), or, with GALLERY_BROWSER_BACKENDS=embedded,
// against `gallery serve` alone on a fresh data dir: first-run setup through the page, logging
// in and out, invites, the account menu, upload, live thumbnails, lightbox, delete, share links,
// language switch, client-side checks, no script injection through file names, and the admin's
// processing view (queue depths, jobs per minute, a failed photo retried).
//
// The app starts without users. The first test creates the admin through the page, as a new
// installation does; every other test gets the admin through `admin()`, which makes the account
// through the API when that test runs alone (e.g. with --test-name-pattern).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const binary = join(root, 'target', 'debug', 'gallery');
const embedded = process.env.GALLERY_BROWSER_BACKENDS === 'embedded';
const shots = join(root, 'target', 'browser', embedded ? 'embedded' : 'services');
const CHROMIUM = '/usr/bin/chromium';
// Names and addresses made here are unique to this run.
const run = randomUUID().slice(0, 8);
const ADMIN = { email: `ada-${run}@example.com`, name: 'Ada Admin', password: 'ada secret password' };
const VIEWPORT = { width: 1280, height: 900 };
// Photos whose name begins so fail on their first start (a test hook of the debug build), and a
// retry processes them: the admin view's failed photo.
const FAILS_ONCE = 'fails-once';

let processes = [];
let dataDir;
let browser;
let base;

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

before(async () => {
  assert.ok(existsSync(CHROMIUM), 'Chromium is missing: run `make test-deps` (apt-get install chromium)');
  assert.ok(existsSync(binary), 'target/debug/gallery is missing: run `cargo build` (make test does)');
  mkdirSync(shots, { recursive: true });
  const tag = randomUUID().replaceAll('-', '').slice(0, 16);
  const port = await freePort();
  const env = {
    ...process.env,
    GALLERY_LISTEN: `127.0.0.1:${port}`,
    GALLERY_HEALTH_LISTEN: '127.0.0.1:0',
    GALLERY_STATIC_DIR: join(root, 'static'),
    GALLERY_S3_ENDPOINT: process.env.GALLERY_TEST_S3_ENDPOINT || 'http://127.0.0.1:9100',
    GALLERY_S3_ACCESS_KEY: 'gallery-test',
    GALLERY_S3_SECRET_KEY: 'gallery-test-secret',
    GALLERY_S3_BUCKET: `browser-${tag}`,
    GALLERY_REDIS_URL: 'redis://127.0.0.1:6379',
    GALLERY_REDIS_PREFIX: `browser:${tag}:`,
    GALLERY_AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672/%2f',
    GALLERY_JOB_QUEUE: `browser.${tag}`,
    GALLERY_LOG: 'warn',
    GALLERY_FAIL_FIRST_START_OF: FAILS_ONCE,
  };
  // The first-run test needs a gallery without users: no headless bootstrap from the caller's env.
  delete env.GALLERY_ADMIN_EMAIL;
  delete env.GALLERY_ADMIN_PASSWORD;
  delete env.GALLERY_ADMIN_PASSWORD_FILE;
  const start = (...args) => spawn(binary, args, { env, stdio: ['ignore', 'inherit', 'inherit'] });
  if (embedded) {
    // Nothing but the binary: no service address reaches `serve`.
    for (const name of Object.keys(env)) {
      if (name.match(/^GALLERY_(S3_ENDPOINT|REDIS_URL|AMQP_URL)$/)) delete env[name];
    }
    dataDir = mkdtempSync(join(tmpdir(), 'gallery-browser-'));
    env.GALLERY_DATA_DIR = dataDir;
    processes = [start('serve')];
  } else {
    processes = [start('web'), start('worker', '--concurrency', '2')];
  }
  base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    assert.ok(i < 300, 'gallery web never became ready (are Redis, RabbitMQ and the S3 test server up?)');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // playwright gives every launch a fresh, empty profile.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  for (const child of processes) child.kill('SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

// ---- talking to the API from Node ----

/// A JSON request from Node. `token` sends it as a script would (bearer); `cookie` as a browser
/// would, with its own Origin (cookie-authenticated changes need one).
async function call(path, { method = 'GET', json, token, cookie } = {}) {
  const headers = {};
  if (json !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  if (cookie) headers.Cookie = cookie;
  if (method !== 'GET') headers.Origin = base;
  const response = await fetch(base + path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return { status: response.status, body, headers: response.headers };
}

/// Logs in from Node; the session cookie as a Cookie header.
async function login(email, password) {
  const response = await fetch(`${base}/api/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Origin: base },
    body: JSON.stringify({ email, password }),
  });
  assert.equal(response.status, 200, `login of ${email}: ${await response.text()}`);
  const cookie = response.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  assert.match(cookie, /gallery_session=/);
  return cookie;
}

let adminToken;

/// The admin's API token, made once. Creates the admin through the API if the first-run test
/// has not run (it runs first in a full run, so normally it made the account through the page).
function admin() {
  adminToken ??= (async () => {
    const config = await call('/api/config');
    if (config.body.setup_required) {
      const setup = await call('/api/setup', { method: 'POST', json: ADMIN });
      assert.equal(setup.status, 201, JSON.stringify(setup.body));
    }
    const cookie = await login(ADMIN.email, ADMIN.password);
    const created = await call('/api/tokens', { method: 'POST', json: { name: 'browser tests' }, cookie });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return created.body.token;
  })();
  return adminToken;
}

/// A member made by the admin's invite and accepted through the API; returns their password.
async function member(email, name, password) {
  const invited = await call('/api/users', { method: 'POST', json: { email, name, role: 'member' }, token: await admin() });
  assert.equal(invited.status, 201, JSON.stringify(invited.body));
  const accepted = await call(`${invited.body.invite_url.replace('/invite/', '/api/invites/')}`, { method: 'POST', json: { password } });
  assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
  return accepted.body.user;
}

/// Uploads one JPEG as a script would; the new photo's id.
async function uploadAs(token, name, bytes) {
  const form = new FormData();
  form.append('file', new Blob([bytes], { type: 'image/jpeg' }), name);
  const response = await fetch(`${base}/api/photos`, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: form });
  const body = await response.json();
  assert.equal(response.status, 202, JSON.stringify(body));
  return body.photos[0].id;
}

/// Waits (polling the API) until the worker has made the photo's variants.
async function processed(token, id) {
  for (const started = Date.now(); Date.now() - started < 60000;) {
    const { status, body } = await call(`/api/photos/${id}`, { token });
    assert.equal(status, 200, JSON.stringify(body));
    assert.notEqual(body.status, 'failed', body.error);
    if (body.status === 'done') return body;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.fail(`photo ${id} was not processed within 60 s`);
}

// ---- the browser side ----

/// A browser context logged in as this person (the cookie is shared with its pages).
async function loggedIn(email, password, options = {}) {
  const context = await browser.newContext({ viewport: VIEWPORT, locale: 'en-US', ...options });
  const response = await context.request.post(`${base}/api/session`, { data: { email, password }, headers: { Origin: base } });
  assert.equal(response.status(), 200, await response.text());
  return context;
}

/// Console errors and page errors (CSP violations included). A refused request (e.g. the
/// 401 of GET /api/session on the login page) is logged by Chromium too: `unexpected` leaves
/// out the statuses a test expects.
function watch(page) {
  const problems = [];
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
  page.on('pageerror', (error) => problems.push(error.message));
  return {
    problems,
    unexpected: (...statuses) => problems.filter((text) => !statuses.some((status) => text.includes(`status of ${status}`))),
  };
}

/// The status the server gives a GET made by the page itself, with its cookies. `no-store`: the
/// answer must come from the server, not from an image the browser cached while logged in.
const statusFromPage = (page, url) => page.evaluate((u) => fetch(u, { cache: 'no-store' }).then((r) => r.status), url);

/// Resolves with the answer to the page's next PATCH /api/me.
const profileSaved = (page) => page.waitForResponse((r) => r.url() === `${base}/api/me` && r.request().method() === 'PATCH');

/// Opens the account menu and picks an item.
async function menu(page, item) {
  await page.click('#account summary');
  await page.click(item);
}

/// Real JPEGs drawn by the browser itself: gradients with a shape, so thumbnails differ.
async function makeJpegs(page, count) {
  const encoded = await page.evaluate(async (n) => {
    const out = [];
    for (let i = 0; i < n; i++) {
      const canvas = new OffscreenCanvas(1600 + i * 200, 1000 + i * 100);
      const g = canvas.getContext('2d');
      const gradient = g.createLinearGradient(0, 0, canvas.width, canvas.height);
      gradient.addColorStop(0, ['#e53e3e', '#3182ce', '#38a169'][i % 3]);
      gradient.addColorStop(1, '#fefcbf');
      g.fillStyle = gradient;
      g.fillRect(0, 0, canvas.width, canvas.height);
      g.fillStyle = '#1a202c';
      g.beginPath();
      g.arc(canvas.width / 3, canvas.height / 2, 200, 0, Math.PI * 2);
      g.fill();
      const blob = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.9 });
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let binary = '';
      for (const byte of bytes) binary += String.fromCharCode(byte);
      out.push(btoa(binary));
    }
    return out;
  }, count);
  return encoded.map((b64) => Buffer.from(b64, 'base64'));
}

/// JPEGs for a test that has no page at hand.
async function jpegs(count) {
  const context = await browser.newContext();
  try {
    return await makeJpegs(await context.newPage(), count);
  } finally {
    await context.close();
  }
}

/// Waits until the tile of photo `id` is done and its thumbnail has loaded.
async function thumbnailLoaded(page, id) {
  await page.waitForFunction((photo) => {
    const img = document.querySelector(`#grid .tile[data-id="${photo}"][data-status=done] img`);
    return img && img.complete && img.naturalWidth > 0;
  }, id, { timeout: 30000 });
}

// ---- the tests ----

test('first run: the page creates the admin, uploads, and after logout nothing is shown or served', async () => {
  assert.equal((await call('/api/config')).body.setup_required, true, 'needs a gallery without users: run it first');
  const context = await browser.newContext({ viewport: VIEWPORT, locale: 'en-US' });
  // Counts the page's event streams, to see that none is open while logged out.
  await context.addInitScript(() => {
    const Native = window.EventSource;
    window.streams = [];
    window.EventSource = class extends Native {
      constructor(...args) {
        super(...args);
        window.streams.push(this);
      }
    };
  });
  const page = await context.newPage();
  const { problems, unexpected } = watch(page);

  await page.goto(base);
  await page.locator('#setup-form').waitFor();
  assert.ok(await page.locator('#login-form').isHidden(), 'first run shows setup, not login');
  assert.ok(await page.locator('#app').isHidden(), 'no upload, no grid before the first account');
  assert.ok(await page.locator('#account').isHidden());
  assert.equal(await page.evaluate(() => window.streams.length), 0, 'no event stream while logged out');
  await page.screenshot({ path: join(shots, 'first-run.png') });

  await page.fill('#setup-email', ADMIN.email);
  await page.fill('#setup-name', ADMIN.name);
  await page.fill('#setup-password', ADMIN.password);
  await page.click('#setup-form button[type=submit]');
  await page.locator('#app').waitFor();
  assert.equal(await page.textContent('#account-name'), ADMIN.name);
  assert.ok(await page.locator('#auth').isHidden());
  assert.equal((await call('/api/config')).body.setup_required, false);
  assert.equal((await call('/api/me', { token: await admin() })).body.role, 'admin', 'the first account is the admin');

  // Upload; the photo shows with its owner.
  const name = `first-${run}.jpg`;
  const [jpeg] = await makeJpegs(page, 1);
  await page.setInputFiles('#files', { name, mimeType: 'image/jpeg', buffer: jpeg });
  const tile = page.locator('#grid .tile').filter({ hasText: name });
  await tile.waitFor();
  const id = await tile.getAttribute('data-id');
  await thumbnailLoaded(page, id);
  assert.equal(await tile.locator('.owner').textContent(), ADMIN.name);
  const variantUrl = await tile.locator('img').getAttribute('src');
  assert.match(variantUrl, /^\/api\/photos\/[^/]+\/variants\/[^/]+$/);
  assert.equal(await statusFromPage(page, variantUrl), 200);
  assert.equal(await page.evaluate(() => window.streams.length), 1, 'one event stream once logged in');
  assert.deepEqual(problems, [], 'console errors while logged in');

  // Logout: the login form, nothing else; the stream closed; the photo's bytes refused.
  await menu(page, '#menu-logout');
  await page.locator('#login-form').waitFor();
  assert.ok(await page.locator('#app').isHidden());
  assert.ok(await page.locator('#account').isHidden());
  assert.equal(await page.locator('#grid > *').count(), 0, 'the grid is emptied, not just hidden');
  assert.ok(await page.evaluate(() => window.streams.every((stream) => stream.readyState === EventSource.CLOSED)),
    'the event stream is closed');
  assert.equal(await statusFromPage(page, variantUrl), 401, 'a variant URL after logout');
  assert.equal(await statusFromPage(page, `/api/photos/${id}/original`), 401);
  assert.equal(await statusFromPage(page, '/api/photos'), 401);

  // A reload stays logged out, and the first-run form is gone for good.
  await page.reload();
  await page.locator('#login-form').waitFor();
  assert.ok(await page.locator('#setup-form').isHidden());
  assert.ok(await page.locator('#app').isHidden());
  assert.equal(await page.evaluate(() => window.streams.length), 0, 'no event stream while logged out');
  assert.deepEqual(unexpected(401), [], 'console errors other than the refused requests');
  await context.close();
});

test('a person uploads, watches, opens, deletes and switches language', async () => {
  const token = await admin();
  const context = await loggedIn(ADMIN.email, ADMIN.password);
  const page = await context.newPage();
  const { problems } = watch(page);
  const dialogs = [];
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.type());
    await dialog.accept();
  });
  const uploads = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && request.url().endsWith('/api/photos')) uploads.push(request.url());
  });

  await page.goto(base);
  await page.waitForFunction(() => document.getElementById('drop-hint').textContent.includes('MB'));
  await page.locator('#app').waitFor();
  await page.evaluate(() => { window.notReloaded = true; });
  assert.equal(await page.locator('#notify-email, #notify-telegram').count(), 0, 'the notify box is now the profile');

  // A text file named like a photo is refused before any upload.
  await page.setInputFiles('#files', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  await page.locator('#uploads li.error').filter({ hasText: 'notes.txt' }).waitFor();
  assert.equal(uploads.length, 0, 'a refused file must not be sent');

  const beach = `beach-${run}.jpg`;
  const hostile = `<img src=x onerror=alert(1)>-${run}.jpg`;
  const mountain = `mountain-${run}.jpg`;
  const names = [beach, hostile, mountain];
  const [a, b, c] = await makeJpegs(page, 3);
  await page.check('input[name=rotate][value=rotate90]');
  await page.setInputFiles('#files', [
    { name: beach, mimeType: 'image/jpeg', buffer: a },
    { name: hostile, mimeType: 'image/jpeg', buffer: b },
    { name: mountain, mimeType: 'image/jpeg', buffer: c },
  ]);
  await page.waitForFunction(() => {
    const bars = [...document.querySelectorAll('#uploads progress')];
    return bars.length === 3 && bars.every((bar) => bar.value === 100);
  });
  assert.equal(uploads.length, 3, 'one request per file');

  // Thumbnails appear and turn done through the live feed, without a reload. (They would not if
  // the page still sent notify_email / notify_telegram: the server answers 400 unknown_field.)
  await page.waitForFunction((mine) => {
    const done = [...document.querySelectorAll('#grid .tile[data-status=done]')]
      .filter((tile) => mine.includes(tile.querySelector('.name').textContent) && tile.querySelector('img'));
    return done.length === mine.length;
  }, names, { timeout: 30000 });
  assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was reloaded');
  const shown = await page.locator('#grid .tile .name').allTextContents();
  assert.ok(shown.includes(hostile), `file name not shown as text: ${shown}`);
  assert.equal(await page.locator('#grid img[src="x"]').count(), 0, 'file name was rendered as HTML');
  for (const name of names) {
    const tile = page.locator('#grid .tile').filter({ hasText: name });
    await thumbnailLoaded(page, await tile.getAttribute('data-id'));
    assert.equal(await tile.locator('.owner').textContent(), ADMIN.name);
  }
  await page.screenshot({ path: join(shots, 'gallery-desktop.png'), fullPage: true });

  // Lightbox: the preview loads, the original can be downloaded; rotate90 made it portrait.
  await page.locator('#grid .tile').filter({ hasText: beach }).locator('button').click();
  await page.waitForFunction(() => document.getElementById('lightbox').open
    && document.getElementById('lightbox-image').complete
    && document.getElementById('lightbox-image').naturalWidth > 0);
  const preview = await page.locator('#lightbox-image').evaluate((img) => [img.naturalWidth, img.naturalHeight]);
  assert.ok(preview[1] > preview[0], `rotated preview should be portrait: ${preview}`);
  assert.equal(await page.textContent('#lightbox-owner'), `By ${ADMIN.name}`);
  const download = await page.locator('#lightbox-download').getAttribute('href');
  assert.match(download, /^\/api\/photos\/[0-9a-f-]+\/original$/);
  assert.equal(await statusFromPage(page, download), 200);
  assert.equal((await call(download, { token })).status, 200);
  await page.screenshot({ path: join(shots, 'lightbox.png') });

  // Delete it (the admin's own photo: the button shows): gone from the page and from the API.
  const id = await page.locator('#grid .tile').filter({ hasText: beach }).getAttribute('data-id');
  assert.ok(await page.locator('#lightbox-delete').isVisible());
  await page.click('#lightbox-delete');
  await page.locator(`#grid .tile[data-id="${id}"]`).waitFor({ state: 'detached' });
  assert.equal(await page.locator('#lightbox').evaluate((d) => d.open), false);
  assert.equal((await call(`/api/photos/${id}`, { token })).status, 404);
  assert.deepEqual(dialogs, ['confirm'], 'only the delete confirmation may open a dialog');

  // Portuguese: saved to the profile, so it sticks across a reload and on another device.
  const saved = profileSaved(page);
  await page.selectOption('#lang', 'pt-BR');
  assert.equal(await page.textContent('#upload-title'), 'Enviar fotos');
  assert.equal((await saved).status(), 200);
  assert.equal((await call('/api/me', { token })).body.lang, 'pt-BR');
  await page.reload();
  await page.waitForFunction(() => document.getElementById('upload-title').textContent === 'Enviar fotos');
  assert.equal(await page.getAttribute('html', 'lang'), 'pt-BR');
  await page.locator('#grid .tile[data-status=done]').first().waitFor();
  assert.equal(await page.locator('#grid .tile .badge.done').first().textContent(), 'pronta');

  // A phone-sized screen still shows everything.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(shots, 'gallery-phone-pt-BR.png'), fullPage: true });
  assert.deepEqual(problems, [], 'console errors (CSP violations included)');
  await context.close();

  // Another browser (nothing stored, English locale) gets the profile's language, and switching
  // back to English there saves that too.
  const other = await loggedIn(ADMIN.email, ADMIN.password);
  const second = await other.newPage();
  await second.goto(base);
  await second.waitForFunction(() => document.getElementById('upload-title').textContent === 'Enviar fotos');
  const back = profileSaved(second);
  await second.selectOption('#lang', 'en');
  assert.equal((await back).status(), 200);
  assert.equal((await call('/api/me', { token })).body.lang, 'en');
  assert.equal(await second.textContent('#upload-title'), 'Upload photos');
  await other.close();
});

test('the login form shows the server\'s error for a wrong password, then logs in', async () => {
  await admin();
  const refused = await call('/api/session', { method: 'POST', json: { email: ADMIN.email, password: 'not the password' } });
  assert.equal(refused.status, 401);
  assert.ok(refused.body.error, 'the server explains a refused login');

  const context = await browser.newContext({ viewport: VIEWPORT, locale: 'en-US' });
  const page = await context.newPage();
  const { unexpected } = watch(page);
  await page.goto(base);
  await page.locator('#login-form').waitFor();
  assert.ok(await page.locator('#app').isHidden(), 'logged out: only the login form');
  assert.ok(await page.locator('#setup-form').isHidden());
  await page.fill('#login-email', ADMIN.email);
  await page.fill('#login-password', 'not the password');
  await page.click('#login-form button[type=submit]');
  await page.locator('#login-error').waitFor();
  assert.equal(await page.textContent('#login-error'), refused.body.error);
  assert.ok(await page.locator('#app').isHidden());
  assert.equal(await statusFromPage(page, '/api/session'), 401, 'a refused login makes no session');
  await page.screenshot({ path: join(shots, 'login-refused.png') });

  await page.fill('#login-password', ADMIN.password);
  await page.click('#login-form button[type=submit]');
  await page.locator('#app').waitFor();
  assert.ok(await page.locator('#login-form').isHidden());
  assert.equal(await page.textContent('#account-name'), ADMIN.name);
  assert.ok(await page.locator('#login-error').isHidden(), 'the old error is gone');
  assert.deepEqual(unexpected(401), []);
  await context.close();
});

test('an invited member sets a password on the page, sees the admin\'s photos and deletes only their own', async () => {
  const token = await admin();
  const [adminJpeg, ownJpeg] = await jpegs(2);
  const adminPhoto = await uploadAs(token, `admin-${run}.jpg`, adminJpeg);
  const email = `mia-${run}@example.com`;
  const invited = await call('/api/users', { method: 'POST', json: { email, name: 'Mia Member', role: 'member' }, token });
  assert.equal(invited.status, 201, JSON.stringify(invited.body));
  assert.match(invited.body.invite_url, /^\/invite\/[^/]+$/);

  const context = await browser.newContext({ viewport: VIEWPORT, locale: 'en-US' });
  const page = await context.newPage();
  const { unexpected } = watch(page);
  page.on('dialog', (dialog) => dialog.accept());
  await page.goto(base + invited.body.invite_url);
  await page.locator('#invite-form').waitFor();
  const who = await page.textContent('#invite-who');
  assert.ok(who.includes('Mia Member') && who.includes(email), `whose invite: ${who}`);
  assert.ok(await page.locator('#app').isHidden());
  assert.ok(await page.locator('#login-form').isHidden());
  await page.screenshot({ path: join(shots, 'invite.png') });
  await page.fill('#invite-password', 'mia secret password');
  await page.click('#invite-form button[type=submit]');
  await page.locator('#app').waitFor();
  assert.equal(new URL(page.url()).pathname, '/', 'the invite address is replaced');
  assert.equal(await page.textContent('#account-name'), 'Mia Member');
  await page.click('#account summary');
  assert.ok(await page.locator('#menu-people').isHidden(), 'People is for admins');
  await page.click('#account summary');

  // The admin's photo: shown with its owner, no delete, no share.
  const theirs = page.locator(`#grid .tile[data-id="${adminPhoto}"]`);
  await theirs.waitFor();
  assert.equal(await theirs.locator('.owner').textContent(), ADMIN.name);
  await theirs.locator('button').click();
  await page.waitForFunction(() => document.getElementById('lightbox').open);
  assert.ok(await page.locator('#lightbox-download').isVisible());
  assert.ok(await page.locator('#lightbox-delete').isHidden(), 'no delete button on someone else\'s photo');
  assert.ok(await page.locator('#lightbox-share').isHidden(), 'no share button on someone else\'s photo');
  assert.equal(await page.textContent('#lightbox-owner'), `By ${ADMIN.name}`);
  await page.click('#lightbox-close');
  // The server agrees with the page.
  assert.equal(await page.evaluate((id) => fetch(`/api/photos/${id}`, { method: 'DELETE' }).then((r) => r.status), adminPhoto), 403);

  // Their own photo: delete and share show, and delete works.
  const own = `mia-${run}.jpg`;
  await page.setInputFiles('#files', { name: own, mimeType: 'image/jpeg', buffer: ownJpeg });
  const mine = page.locator('#grid .tile').filter({ hasText: own });
  await mine.waitFor();
  assert.equal(await mine.locator('.owner').textContent(), 'Mia Member');
  const ownId = await mine.getAttribute('data-id');
  await mine.locator('button').click();
  await page.waitForFunction(() => document.getElementById('lightbox').open);
  assert.ok(await page.locator('#lightbox-share').isVisible());
  await page.click('#lightbox-delete');
  await mine.waitFor({ state: 'detached' });
  assert.equal((await call(`/api/photos/${ownId}`, { token })).status, 404);
  assert.equal((await call(`/api/photos/${adminPhoto}`, { token })).status, 200, 'the admin\'s photo stays');
  assert.deepEqual(unexpected(403), [], 'console errors other than the refused delete');
  await context.close();

  // The same invite again: used, so a clear message and the login form.
  const again = await browser.newContext({ viewport: VIEWPORT, locale: 'en-US' });
  const used = await again.newPage();
  await used.goto(base + invited.body.invite_url);
  await used.locator('#login-form').waitFor();
  assert.equal(await used.textContent('#auth-message'), 'This invite link no longer works: it was used already, it expired, or it never existed. Ask for a new one, or log in.');
  assert.ok(await used.locator('#invite-form').isHidden());
  assert.ok(await used.locator('#app').isHidden());
  await again.close();
});

test('a share link shows the photo to someone without an account, downloads the original, and ends', async () => {
  const token = await admin();
  const [jpeg] = await jpegs(1);
  const name = `shared-${run}.jpg`;
  const id = await uploadAs(token, name, jpeg);
  await processed(token, id);

  const context = await loggedIn(ADMIN.email, ADMIN.password);
  const page = await context.newPage();
  const { problems } = watch(page);
  await page.goto(base);
  await thumbnailLoaded(page, id);
  await page.locator(`#grid .tile[data-id="${id}"] button`).click();
  await page.waitForFunction(() => document.getElementById('lightbox').open);
  assert.ok(await page.locator('#share').isHidden(), 'the share form opens on demand');
  await page.click('#lightbox-share');
  await page.selectOption('#share-expiry', '86400');
  const asked = Date.now();
  await page.click('#share-create');
  await page.locator('#share-url').waitFor();
  const url = await page.inputValue('#share-url');
  assert.ok(url.startsWith(`${base}/s/`) && url.length > `${base}/s/`.length, `absolute share URL: ${url}`);
  const links = (await call(`/api/photos/${id}/links`, { token })).body.links;
  assert.equal(links.length, 1);
  const expires = Date.parse(links[0].expires_at) - asked;
  assert.ok(Math.abs(expires - 86400 * 1000) < 5 * 60 * 1000, `the link lasts the day chosen: ${links[0].expires_at}`);
  await page.screenshot({ path: join(shots, 'lightbox-share.png') });
  assert.deepEqual(problems, []);
  await context.close();

  // Someone without an account: the preview, the name, the original.
  const stranger = await browser.newContext({ viewport: VIEWPORT, locale: 'en-US', acceptDownloads: true });
  const shared = await stranger.newPage();
  const { unexpected } = watch(shared);
  await shared.goto(url);
  await shared.locator('#shared').waitFor();
  assert.equal(await shared.textContent('#shared-name'), name);
  await shared.waitForFunction(() => {
    const img = document.getElementById('shared-image');
    return img.complete && img.naturalWidth > 0;
  });
  const [file] = await Promise.all([shared.waitForEvent('download'), shared.click('#shared-download')]);
  assert.equal(file.suggestedFilename(), name);
  assert.ok(readFileSync(await file.path()).equals(jpeg), 'the download is the original, byte for byte');
  await shared.screenshot({ path: join(shots, 'share-page.png') });
  // The link opens this photo only, not the gallery.
  assert.equal(await statusFromPage(shared, `/api/photos/${id}/original`), 401);
  assert.equal(await statusFromPage(shared, '/api/photos'), 401);

  // Revoked: the same address now says so.
  assert.equal((await call(`/api/photos/${id}/links/${links[0].id}`, { method: 'DELETE', token })).status, 204);
  await shared.reload();
  await shared.locator('#shared-status').filter({ hasText: 'This link has expired or does not exist.' }).waitFor();
  assert.ok(await shared.locator('#shared').isHidden());
  // An address that never was a link, too.
  await shared.goto(`${base}/s/not-a-real-link`);
  await shared.locator('#shared-status').filter({ hasText: 'This link has expired or does not exist.' }).waitFor();
  assert.deepEqual(unexpected(401, 404), []);
  await stranger.close();
});

test('the account menu saves the profile, makes and revokes tokens, and invites and manages people', async () => {
  const token = await admin();
  const context = await loggedIn(ADMIN.email, ADMIN.password);
  const page = await context.newPage();
  const { problems } = watch(page);
  const dialogs = [];
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.accept();
  });
  await page.goto(base);
  await page.locator('#app').waitFor();

  // Profile: notification contacts; "" clears one.
  await menu(page, '#menu-profile');
  await page.waitForFunction((name) => document.getElementById('profile-name').value === name, ADMIN.name);
  const notifyEmail = `ada-notify-${run}@example.com`;
  await page.fill('#profile-notify-email', notifyEmail);
  await page.fill('#profile-notify-telegram', '123456789');
  let saved = profileSaved(page);
  await page.click('#profile-form button[type=submit]');
  assert.equal((await saved).status(), 200);
  await page.locator('#profile-status').waitFor();
  let me = (await call('/api/me', { token })).body;
  assert.equal(me.notify_email, notifyEmail);
  assert.equal(me.notify_telegram, '123456789');
  await page.fill('#profile-notify-telegram', '');
  saved = profileSaved(page);
  await page.click('#profile-form button[type=submit]');
  assert.equal((await saved).status(), 200);
  me = (await call('/api/me', { token })).body;
  assert.equal(me.notify_telegram, null, 'an emptied contact is cleared');
  assert.equal(me.notify_email, notifyEmail);
  await page.click('#profile-dialog .close-dialog');

  // Tokens: shown once, work as a bearer, stop working when deleted.
  await menu(page, '#menu-tokens');
  await page.locator('#token-list li').first().waitFor();
  await page.fill('#token-name', `backup ${run}`);
  await page.click('#token-form button[type=submit]');
  await page.locator('#token-value').waitFor();
  const secret = await page.inputValue('#token-value');
  assert.ok(secret.length >= 20, 'the token is shown');
  assert.equal((await call('/api/session', { token: secret })).status, 200, 'the new token works');
  const row = page.locator('#token-list li').filter({ hasText: `backup ${run}` });
  await row.waitFor();
  await page.screenshot({ path: join(shots, 'account-tokens.png') });
  await page.click('#tokens-dialog .close-dialog');
  await menu(page, '#menu-tokens');
  assert.ok(await page.locator('#token-created').isHidden(), 'a token is shown only once');
  assert.equal(await page.inputValue('#token-value'), '');
  await row.locator('button').click();
  await row.waitFor({ state: 'detached' });
  assert.equal((await call('/api/session', { token: secret })).status, 401, 'a deleted token stops working');
  await page.click('#tokens-dialog .close-dialog');

  // People: invite (the link shown once, absolute), change the role, remove.
  await menu(page, '#menu-people');
  await page.locator('#people-list li').first().waitFor();
  const email = `bo-${run}@example.com`;
  await page.fill('#person-email', email);
  await page.fill('#person-name', 'Bo Guest');
  await page.click('#person-form button[type=submit]');
  await page.locator('#person-invite-url').waitFor();
  const inviteUrl = await page.inputValue('#person-invite-url');
  assert.ok(inviteUrl.startsWith(`${base}/invite/`), `absolute invite URL: ${inviteUrl}`);
  const inviteApi = new URL(inviteUrl).pathname.replace('/invite/', '/api/invites/');
  assert.equal((await call(inviteApi)).body.email, email, 'the link is a working invite');
  const person = page.locator('#people-list li').filter({ hasText: email });
  await person.locator('.badge.pending').waitFor();
  await page.screenshot({ path: join(shots, 'account-people.png') });
  const byEmail = async () => (await call('/api/users', { token })).body.users.find((u) => u.email === email);
  assert.equal((await byEmail()).role, 'member');
  assert.equal((await byEmail()).pending, true);

  const roleSaved = page.waitForResponse((r) => r.url().includes('/api/users/') && r.request().method() === 'PATCH');
  await person.locator('select.person-role').selectOption('admin');
  assert.equal((await roleSaved).status(), 200);
  assert.equal((await byEmail()).role, 'admin');
  // The admin's own row has no remove button.
  const self = page.locator('#people-list li').filter({ hasText: ADMIN.email });
  assert.equal(await self.locator('button').count(), 0);

  await person.locator('button').click();
  await person.waitFor({ state: 'detached' });
  assert.equal(await byEmail(), undefined, 'removed');
  assert.equal((await call(inviteApi)).status, 404, 'the invite of a removed person is void');
  assert.equal(dialogs.length, 2, `one confirmation per deletion: ${dialogs}`);
  assert.deepEqual(problems, []);
  await context.close();
});

test('a password change: a wrong current password is an error, not a logout; other sessions end', async () => {
  const email = `cy-${run}@example.com`;
  const first = 'cy first password';
  const second = 'cy second password';
  await member(email, 'Cy Member', first);

  // Two browsers logged in as Cy; the change happens in the first.
  const elsewhere = await loggedIn(email, first);
  const other = await elsewhere.newPage();
  await other.goto(base);
  await other.locator('#app').waitFor();

  const context = await loggedIn(email, first);
  const page = await context.newPage();
  const { unexpected } = watch(page);
  await page.goto(base);
  await page.locator('#app').waitFor();
  await menu(page, '#menu-password');
  await page.fill('#password-current', 'not my password');
  await page.fill('#password-new', second);
  await page.click('#password-form button[type=submit]');
  await page.locator('#password-error').waitFor();
  assert.ok((await page.textContent('#password-error')).length > 0);
  assert.ok(await page.locator('#app').isVisible(), 'still logged in after a wrong current password');
  assert.equal(await statusFromPage(page, '/api/session'), 200);

  await page.fill('#password-current', first);
  await page.fill('#password-new', second);
  await page.click('#password-form button[type=submit]');
  await page.locator('#password-status').waitFor();
  assert.ok(await page.locator('#password-error').isHidden());
  // This browser keeps its (re-issued) session.
  await page.reload();
  await page.locator('#app').waitFor();
  assert.equal((await call('/api/session', { method: 'POST', json: { email, password: first } })).status, 401);
  await login(email, second);
  assert.deepEqual(unexpected(401), []);
  await context.close();

  // The other browser's session ended: its next request (here: saving a language to the profile;
  // the language select stays usable even if the page noticed already, through its event stream)
  // brings back the login form, with a reason, in the language just chosen.
  await other.selectOption('#lang', 'pt-BR');
  await other.locator('#login-form').waitFor();
  assert.equal(await other.textContent('#auth-message'), 'Sua sessão terminou. Entre novamente.');
  assert.ok(await other.locator('#app').isHidden());
  assert.ok(await other.locator('#account').isHidden());
  assert.equal(await other.locator('#grid > *').count(), 0);
  await elsewhere.close();
});

/// Waits (polling the API) until the photo has failed; its record.
async function failedPhoto(token, id) {
  for (const started = Date.now(); Date.now() - started < 60000;) {
    const { status, body } = await call(`/api/photos/${id}`, { token });
    assert.equal(status, 200, JSON.stringify(body));
    if (body.status === 'failed') return body;
    assert.notEqual(body.status, 'done', 'the photo was meant to fail');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.fail(`photo ${id} did not fail within 60 s`);
}

test('an admin sees the queues, jobs per minute and a failed photo, and retries it; a member has no such view', async () => {
  const token = await admin();
  const [good, once] = await jpegs(2);
  const goodId = await uploadAs(token, `processed-${run}.jpg`, good);
  const failedName = `${FAILS_ONCE}-${run}.jpg`;
  const failedId = await uploadAs(token, failedName, once);
  await processed(token, goodId);
  const failed = await failedPhoto(token, failedId);

  const context = await loggedIn(ADMIN.email, ADMIN.password);
  const page = await context.newPage();
  const { problems } = watch(page);
  await page.goto(base);
  await page.locator('#app').waitFor();
  await menu(page, '#menu-admin');
  await page.locator('#admin').waitFor();
  assert.ok(await page.locator('#app').isHidden(), 'the view replaces the gallery');
  assert.equal(new URL(page.url()).hash, '#admin');

  // Depths: a number per lane; the failed photo's job waits in the dead-letter queue.
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById('depth-dead').textContent));
  for (const lane of ['upload', 'bulk', 'retrying', 'dead']) {
    assert.match(await page.textContent(`#depth-${lane}`), /^\d+$/, lane);
  }
  assert.ok(Number(await page.textContent('#depth-dead')) >= 1, 'the failed job is dead-lettered');
  // Jobs per minute: this test's two at least, in the hour and in the chart's bars.
  const hour = (await page.textContent('#activity-last-hour')).match(/^(\d+) done, (\d+) failed$/);
  assert.ok(hour && Number(hour[1]) >= 1 && Number(hour[2]) >= 1, `last hour: ${hour}`);
  assert.equal(await page.locator('#activity-chart g').count(), 60, 'a column per minute');
  assert.ok(await page.locator('#activity-chart .bar-done').count() >= 1);
  assert.ok(await page.locator('#activity-chart .bar-failed').count() >= 1);

  // The failed photo, with its error and a Retry button.
  const row = page.locator(`#failed-list tr[data-id="${failedId}"]`);
  await row.waitFor();
  assert.equal(await row.locator('.filename').textContent(), failedName);
  assert.equal(await row.locator('.failure').textContent(), failed.error);
  assert.match(failed.error, /failed on purpose/);
  assert.equal(await page.locator(`#failed-list tr[data-id="${goodId}"]`).count(), 0, 'a processed photo is not listed');
  await page.screenshot({ path: join(shots, 'admin.png') });

  await row.getByRole('button', { name: `Retry: ${failedName}` }).click();
  // Queued again at once, then gone from the list at the next refresh; processed meanwhile.
  await page.waitForFunction((id) => {
    const tr = document.querySelector(`#failed-list tr[data-id="${id}"]`);
    return !tr || tr.classList.contains('retried');
  }, failedId);
  const done = await processed(token, failedId);
  assert.ok(done.variants.thumb, 'retried and processed');
  await row.waitFor({ state: 'detached', timeout: 20000 });
  assert.ok(await page.locator('#admin-error').isHidden());

  await page.click('#admin-back');
  await page.locator('#app').waitFor();
  assert.ok(await page.locator('#admin').isHidden());
  assert.deepEqual(problems, []);
  await context.close();

  // A member: no menu entry, and /#admin shows the gallery; the API refuses them too.
  const email = `omar-${run}@example.com`;
  await member(email, 'Omar Member', 'omar secret password');
  const theirs = await loggedIn(email, 'omar secret password');
  const memberPage = await theirs.newPage();
  const watched = watch(memberPage);
  await memberPage.goto(`${base}/#admin`);
  await memberPage.locator('#app').waitFor();
  assert.ok(await memberPage.locator('#admin').isHidden(), 'no admin view for a member');
  await memberPage.click('#account summary');
  assert.ok(await memberPage.locator('#menu-admin').isHidden(), 'no menu entry for a member');
  for (const path of ['/api/admin/queues', '/api/admin/activity', '/api/admin/failed']) {
    assert.equal(await statusFromPage(memberPage, path), 403, path);
  }
  assert.deepEqual(watched.unexpected(403), []);
  await theirs.close();
});
