// Makes the README's picture of the admin view, static/screenshots/admin.png (1100×700), from a
// real `gallery serve` on a fresh data dir with some work on it: a few minutes of uploads by two
// people, a scan whose pixels are corrupt (failed, its job dead-lettered), then a reprocessing
// of everything and new uploads, caught while they wait. Workers are slowed (a test hook) so
// the queues have a depth to show. Not a test: run it by hand after changing the view.
//
//   cargo build --features test-hooks && node tests/browser/admin-screenshot.mjs [OUT.png]
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = process.argv[2] || join(root, 'static', 'screenshots', 'admin.png');
const ADMIN = { email: 'ada@example.com', name: 'Ada', password: 'ada secret password' };
const MEMBER = { email: 'mia@example.com', name: 'Mia', password: 'mia secret password' };
const ROUNDS = 4; // batches of uploads, a minute apart: bars in the chart
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const port = await new Promise((resolve) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port: free } = server.address();
    server.close(() => resolve(free));
  });
});
const base = `http://127.0.0.1:${port}`;
const dataDir = mkdtempSync(join(tmpdir(), 'gallery-shot-'));
const env = { PATH: process.env.PATH, GALLERY_DATA_DIR: dataDir, GALLERY_LISTEN: `127.0.0.1:${port}`,
  GALLERY_STATIC_DIR: join(root, 'static'), GALLERY_LOG: 'warn', GALLERY_WORKER_CONCURRENCY: '1',
  GALLERY_JOB_DELAY_MS: '700', GALLERY_ADMIN_EMAIL: ADMIN.email, GALLERY_ADMIN_PASSWORD: ADMIN.password };
const gallery = spawn(join(root, 'target', 'debug', 'gallery'), ['serve'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });

try {
  for (let i = 0; !(await fetch(`${base}/readyz`).then((r) => r.ok, () => false)); i++) {
    if (i > 300) throw new Error('gallery serve did not start');
    await pause(100);
  }
  const session = async (who) => {
    const context = await browser.newContext({ viewport: { width: 1100, height: 700 }, locale: 'en-US' });
    const answer = await context.request.post(`${base}/api/session`, { data: who, headers: { Origin: base } });
    if (!answer.ok()) throw new Error(`login of ${who.email}: ${answer.status()}`);
    return context;
  };
  const ada = await session(ADMIN);
  const call = async (context, method, path, data) => {
    const answer = await context.request.fetch(base + path, { method, data, headers: { Origin: base } });
    if (!answer.ok()) throw new Error(`${method} ${path}: ${answer.status()} ${await answer.text()}`);
    return answer.json();
  };
  await call(ada, 'PATCH', '/api/me', { name: 'Ada Lovelace' });
  const invited = await call(ada, 'POST', '/api/users', { email: MEMBER.email, name: 'Mia Santos', role: 'member' });
  // Accepted from outside Ada's browser: accepting logs the new person in.
  const accepted = await fetch(base + invited.invite_url.replace('/invite/', '/api/invites/'), {
    method: 'POST', headers: { 'Content-Type': 'application/json', Origin: base },
    body: JSON.stringify({ password: MEMBER.password }),
  });
  if (!accepted.ok) throw new Error(`invite: ${accepted.status}`);
  const mia = await session(MEMBER);

  // Photos drawn by the browser: gradients of several sizes.
  const drawer = await ada.newPage();
  const photo = (n, type = 'image/jpeg') => drawer.evaluate(async ([i, kind]) => {
    const canvas = new OffscreenCanvas(1200 + (i % 5) * 300, 900 + (i % 3) * 200);
    const g = canvas.getContext('2d');
    const gradient = g.createLinearGradient(0, 0, canvas.width, canvas.height);
    gradient.addColorStop(0, ['#e53e3e', '#3182ce', '#38a169', '#d69e2e'][i % 4]);
    gradient.addColorStop(1, '#fefcbf');
    g.fillStyle = gradient;
    g.fillRect(0, 0, canvas.width, canvas.height);
    const blob = await canvas.convertToBlob({ type: kind, quality: 0.9 });
    return [...new Uint8Array(await blob.arrayBuffer())];
  }, [n, type]).then((bytes) => Buffer.from(bytes));
  const upload = (context, name, buffer, mimeType = 'image/jpeg') => context.request.post(`${base}/api/photos`, {
    multipart: { file: { name, mimeType, buffer } }, headers: { Origin: base },
  });
  let n = 0;
  let lastRounds = null; // when the rounds after the scan's began
  for (let round = 0; round < ROUNDS; round++) {
    if (round === 2) lastRounds = new Date().toISOString();
    const batch = 3 + ((round * 5) % 7);
    for (let i = 0; i < batch; i++, n++) {
      const who = n % 3 === 2 ? mia : ada;
      await upload(who, `IMG_${2040 + n}.jpg`, await photo(n));
    }
    if (round === 1) {
      // A scan whose header reads but whose pixels do not: it fails for good.
      const scan = await photo(99, 'image/png');
      const middle = Math.floor(scan.length / 2);
      for (let i = middle; i < middle + 64; i++) scan[i] ^= 0x5a;
      await upload(mia, 'scan-grandma-1962.png', scan, 'image/png');
    }
    console.log(`round ${round + 1} of ${ROUNDS}: ${batch} photos`);
    if (round < ROUNDS - 1) await pause(60000);
  }
  await pause(15000);

  // The later photos reprocessed on the bulk lane (not the failed scan: it stays listed), and new
  // uploads ahead of them.
  const queued = await call(ada, 'POST', '/api/admin/reprocess', { all: true, since: lastRounds });
  console.log(`reprocessing ${queued.queued} photos`);
  for (let i = 0; i < 3; i++, n++) await upload(mia, `IMG_${2040 + n}.jpg`, await photo(n));
  const page = await ada.newPage();
  await page.goto(`${base}/#admin`);
  await page.waitForFunction(() => Number(document.getElementById('depth-bulk').textContent) > 0
    && document.querySelectorAll('#failed-list tr').length > 0);
  await page.mouse.move(0, 0);
  mkdirSync(dirname(out), { recursive: true });
  await page.screenshot({ path: out });
  console.log(`${out}: ${statSync(out).size} bytes`);
} finally {
  await browser.close();
  gallery.kill('SIGTERM');
  await new Promise((resolve) => gallery.once('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
}
