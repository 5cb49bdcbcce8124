// The gallery page in real headless Chromium against the real web and worker roles (Redis,
// RabbitMQ and the S3 test server on loopback), or, with GALLERY_BROWSER_BACKENDS=embedded,
// against `gallery serve` alone on a fresh data dir: upload, live thumbnails, lightbox,
// delete, language switch, client-side checks, no script injection through file names.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
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
  };
  const run = (...args) => spawn(binary, args, { env, stdio: ['ignore', 'inherit', 'inherit'] });
  if (embedded) {
    // Nothing but the binary: no service address reaches `serve`.
    for (const name of Object.keys(env)) {
      if (name.match(/^GALLERY_(S3_ENDPOINT|REDIS_URL|AMQP_URL)$/)) delete env[name];
    }
    dataDir = mkdtempSync(join(tmpdir(), 'gallery-browser-'));
    env.GALLERY_DATA_DIR = dataDir;
    processes = [run('serve')];
  } else {
    processes = [run('web'), run('worker', '--concurrency', '2')];
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

test('a person uploads, watches, opens, deletes and switches language', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()); });
  page.on('pageerror', (error) => problems.push(error.message));
  const dialogs = [];
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.type());
    await dialog.accept();
  });
  let uploads = 0;
  page.on('request', (request) => {
    if (request.method() === 'POST' && request.url().endsWith('/api/photos')) uploads += 1;
  });

  await page.goto(base);
  await page.waitForFunction(() => document.getElementById('drop-hint').textContent.includes('MB'));
  await page.evaluate(() => { window.notReloaded = true; });

  // A text file named like a photo is refused before any upload.
  await page.setInputFiles('#files', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  await page.locator('#uploads li.error').filter({ hasText: 'notes.txt' }).waitFor();
  assert.equal(uploads, 0, 'a refused file must not be sent');

  const hostile = '<img src=x onerror=alert(1)>.jpg';
  const [a, b, c] = await makeJpegs(page, 3);
  await page.check('input[name=rotate][value=rotate90]');
  await page.setInputFiles('#files', [
    { name: 'beach.jpg', mimeType: 'image/jpeg', buffer: a },
    { name: hostile, mimeType: 'image/jpeg', buffer: b },
    { name: 'mountain.jpg', mimeType: 'image/jpeg', buffer: c },
  ]);
  await page.waitForFunction(() => {
    const bars = [...document.querySelectorAll('#uploads progress')];
    return bars.length === 3 && bars.every((bar) => bar.value === 100);
  });
  assert.equal(uploads, 3, 'one request per file');

  // Thumbnails appear and turn done through the live feed, without a reload.
  await page.waitForFunction(() => document.querySelectorAll('#grid .tile[data-status=done] img').length === 3,
    null, { timeout: 30000 });
  assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was reloaded');
  const names = await page.locator('#grid .tile .name').allTextContents();
  assert.ok(names.includes(hostile), `file name not shown as text: ${names}`);
  assert.equal(await page.locator('#grid img[src="x"]').count(), 0, 'file name was rendered as HTML');
  const widths = await page.locator('#grid .tile img').evaluateAll((imgs) => imgs.map((img) => img.naturalWidth));
  assert.ok(widths.every((w) => w > 0), `a thumbnail did not load: ${widths}`);
  await page.screenshot({ path: join(shots, 'gallery-desktop.png'), fullPage: true });

  // Lightbox: the preview loads, the original can be downloaded; rotate90 made it portrait.
  await page.locator('#grid .tile').filter({ hasText: 'beach.jpg' }).locator('button').click();
  await page.waitForFunction(() => document.getElementById('lightbox').open
    && document.getElementById('lightbox-image').complete
    && document.getElementById('lightbox-image').naturalWidth > 0);
  const preview = await page.locator('#lightbox-image').evaluate((img) => [img.naturalWidth, img.naturalHeight]);
  assert.ok(preview[1] > preview[0], `rotated preview should be portrait: ${preview}`);
  const download = await page.locator('#lightbox-download').getAttribute('href');
  assert.match(download, /^\/api\/photos\/[0-9a-f-]+\/original$/);
  assert.equal((await fetch(base + download)).status, 200);
  await page.screenshot({ path: join(shots, 'lightbox.png') });

  // Delete it: gone from the page and from the API.
  const id = await page.locator('#grid .tile').filter({ hasText: 'beach.jpg' }).getAttribute('data-id');
  await page.click('#lightbox-delete');
  await page.locator(`#grid .tile[data-id="${id}"]`).waitFor({ state: 'detached' });
  assert.equal(await page.locator('#lightbox').evaluate((d) => d.open), false);
  assert.equal((await fetch(`${base}/api/photos/${id}`)).status, 404);
  assert.deepEqual(dialogs, ['confirm'], 'only the delete confirmation may open a dialog');

  // Portuguese, and it sticks across a reload.
  await page.selectOption('#lang', 'pt-BR');
  assert.equal(await page.textContent('#upload-title'), 'Enviar fotos');
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
});
