// The admin view ("Processing", at /#admin, for admins only; the API refuses anyone else with 403
// anyway): what waits in each lane of the job queue and in the dead-letter queue
// (GET /api/admin/queues), the jobs all workers finished per minute over the last hour
// (GET /api/admin/activity), the failed photos with their errors and a Retry button each
// (GET /api/admin/failed, POST /api/admin/photos/{id}/retry), and reprocessing
// (POST /api/admin/reprocess). It reads everything again every few seconds while it shows.
// File names and errors are set only as text.
import { api, json } from './api.js';
import { formatDate, language, t } from './i18n.js';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const REFRESH_MS = 5000;
const PAGE = 20; // failed photos shown at first, and added by "Show more"
const MOST = 100; // the API's largest page

let hooks; // { user() } from the page
let timer = null;
let shown = false;
let generation = 0; // answers to an older opening (or a closed view) are dropped
let failedLimit = PAGE;
let last = null; // the last answers, kept to redraw them in another language
const retried = new Set(); // ids retried from this view, shown as queued until they leave the list

const isAdmin = () => Boolean(hooks && hooks.user() && hooks.user().role === 'admin');

function showError(error) {
  $('admin-error').textContent = error instanceof TypeError ? t('networkError') : error.message;
  $('admin-error').hidden = false;
}

// ---- drawing ----

function renderDepths(depths) {
  for (const lane of ['upload', 'bulk', 'retrying', 'dead']) $(`depth-${lane}`).textContent = String(depths[lane]);
}

const time = (value) => new Date(value).toLocaleTimeString(language(), { hour: '2-digit', minute: '2-digit' });

function renderActivity(minutes) {
  const sum = (list) => list.reduce((total, m) => ({ done: total.done + m.done, failed: total.failed + m.failed }), { done: 0, failed: 0 });
  // The last minute is the current one, still counting: "last minute" is the one before it.
  const lastFull = minutes.length > 1 ? minutes[minutes.length - 2] : { done: 0, failed: 0 };
  $('activity-last-minute').textContent = t('doneFailed', lastFull);
  $('activity-last-hour').textContent = t('doneFailed', sum(minutes));
  const chart = $('activity-chart');
  chart.replaceChildren();
  const width = 10;
  const height = 100;
  chart.setAttribute('viewBox', `0 0 ${minutes.length * width} ${height}`);
  const highest = Math.max(1, ...minutes.map((m) => m.done + m.failed));
  const scale = (count) => (count / highest) * (height - 4);
  minutes.forEach((minute, index) => {
    const group = document.createElementNS(SVG, 'g');
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `${time(minute.minute)}: ${t('doneFailed', minute)}`;
    group.append(title);
    // Hover target: the whole column, even for a minute with nothing done.
    const column = document.createElementNS(SVG, 'rect');
    column.setAttribute('class', 'bar-column');
    column.setAttribute('x', index * width);
    column.setAttribute('y', 0);
    column.setAttribute('width', width);
    column.setAttribute('height', height);
    group.append(column);
    let top = height;
    for (const [count, kind] of [[minute.done, 'done'], [minute.failed, 'failed']]) {
      if (!count) continue;
      const bar = document.createElementNS(SVG, 'rect');
      const size = Math.max(1, scale(count));
      top -= size;
      bar.setAttribute('class', `bar-${kind}`);
      bar.setAttribute('x', index * width + 1);
      bar.setAttribute('y', top);
      bar.setAttribute('width', width - 2);
      bar.setAttribute('height', size);
      group.append(bar);
    }
    chart.append(group);
  });
  chart.setAttribute('aria-label', `${t('activityTitle')}: ${t('doneFailed', sum(minutes))}`);
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderFailed(page) {
  const list = $('failed-list');
  list.replaceChildren();
  for (const photo of page.photos) {
    const row = document.createElement('tr');
    row.dataset.id = photo.id;
    const action = document.createElement('td');
    if (retried.has(photo.id)) {
      row.classList.add('retried');
      action.textContent = t('retried');
    } else {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = t('retry');
      button.setAttribute('aria-label', `${t('retry')}: ${photo.filename}`);
      button.addEventListener('click', () => retry(photo, row, action));
      action.append(button);
    }
    row.append(
      cell(photo.filename, 'filename'),
      cell(photo.error || '', 'failure'),
      cell(String(photo.attempts), 'number'),
      cell(photo.owner ? photo.owner.name : '—'),
      cell(formatDate(photo.created_at), 'when'),
      action,
    );
    list.append(row);
  }
  $('failed-table').hidden = page.photos.length === 0;
  $('failed-none').hidden = page.photos.length > 0;
  const more = Boolean(page.next_cursor);
  $('failed-more').hidden = !more || failedLimit >= MOST;
  $('failed-newest').hidden = !more || failedLimit < MOST;
  $('failed-newest').textContent = t('onlyNewest', { count: MOST });
}

function render() {
  if (!last) return;
  renderDepths(last.queues);
  renderActivity(last.activity.minutes);
  renderFailed(last.failed);
  $('admin-updated').textContent = t('adminUpdated', { time: new Date(last.at).toLocaleTimeString(language()), seconds: REFRESH_MS / 1000 });
}

// ---- reading and acting ----

async function refresh() {
  if (!shown) return;
  const mine = generation;
  try {
    const [queues, activity, failed] = await Promise.all([
      api('/api/admin/queues').then(json),
      api('/api/admin/activity').then(json),
      api(`/api/admin/failed?limit=${failedLimit}`).then(json),
    ]);
    if (mine !== generation) return;
    // A retried photo has left the list: forget it.
    const listed = new Set(failed.photos.map((photo) => photo.id));
    for (const id of retried) if (!listed.has(id)) retried.delete(id);
    last = { queues, activity, failed, at: Date.now() };
    $('admin-error').hidden = true;
    render();
  } catch (error) {
    if (mine === generation) showError(error);
  }
}

async function retry(photo, row, action) {
  const button = action.querySelector('button');
  button.disabled = true;
  try {
    await json(await api(`/api/admin/photos/${encodeURIComponent(photo.id)}/retry`, { method: 'POST' }));
    retried.add(photo.id);
    row.classList.add('retried');
    action.textContent = t('retried');
  } catch (error) {
    button.disabled = false;
    showError(error); // e.g. 409 not_failed: retried from elsewhere meanwhile
  }
  refresh();
}

async function reprocess(scope) {
  if (scope === 'all' && !window.confirm(t('confirmReprocessAll'))) return;
  const status = $('reprocess-status');
  const buttons = [$('reprocess-missing'), $('reprocess-all')];
  for (const button of buttons) button.disabled = true;
  status.hidden = true;
  try {
    const summary = await json(await api('/api/admin/reprocess', { method: 'POST', json: { [scope]: true } }));
    status.textContent = t('reprocessQueued', summary);
    status.hidden = false;
  } catch (error) {
    showError(error);
  } finally {
    for (const button of buttons) button.disabled = false;
  }
  refresh();
}

// ---- showing and hiding ----

function open() {
  if (shown) return;
  shown = true;
  generation += 1;
  $('app').hidden = true;
  $('admin').hidden = false;
  $('admin-error').hidden = true;
  $('reprocess-status').hidden = true;
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

function close({ showGallery }) {
  if (shown) {
    shown = false;
    generation += 1;
    clearInterval(timer);
    timer = null;
  }
  $('admin').hidden = true;
  if (showGallery) $('app').hidden = false;
}

/// Shows what the address asks for: the admin view at #admin for an admin, else the gallery.
export function route() {
  if (!hooks || !hooks.user()) return;
  if (location.hash === '#admin' && isAdmin()) open();
  else close({ showGallery: true });
}

/// The menu entry for this user (admins only); a member who was an admin leaves the view.
export function showAdminEntry() {
  $('menu-admin').hidden = !isAdmin();
  route();
}

/// Logged out: the view closes and forgets what it showed.
export function hideAdmin() {
  close({ showGallery: false });
  last = null;
  retried.clear();
  failedLimit = PAGE;
  $('failed-list').replaceChildren();
  $('menu-admin').hidden = true;
}

export function refreshAdminTexts() {
  if (shown) render();
}

export function initAdmin(pageHooks) {
  hooks = pageHooks;
  $('menu-admin').addEventListener('click', () => {
    $('account').open = false;
    location.hash = '#admin';
  });
  $('admin-back').addEventListener('click', () => {
    history.pushState(null, '', location.pathname + location.search);
    route();
  });
  window.addEventListener('hashchange', route);
  $('failed-more').addEventListener('click', () => {
    failedLimit = Math.min(MOST, failedLimit + PAGE);
    refresh();
  });
  $('reprocess-missing').addEventListener('click', () => reprocess('missing'));
  $('reprocess-all').addEventListener('click', () => reprocess('all'));
}
