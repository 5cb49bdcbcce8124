// The gallery page: uploads with progress, a newest-first grid that loads more on scroll and
// updates live from /api/events, and a lightbox. Filenames are only ever set as text.
import { language, setLanguage, t, translatePage } from './i18n.js';

const $ = (id) => document.getElementById(id);
const tiles = new Map(); // photo id -> { element, photo }
let config = { max_upload_bytes: 50 * 1024 * 1024, accepted_types: ['image/jpeg', 'image/png', 'image/webp'] };
let cursor = null;
let loading = false;
let exhausted = false;

const megabytes = (bytes) => `${Math.round(bytes / 1024 / 1024)} MB`;

function refreshTexts() {
  translatePage();
  $('drop-hint').textContent = t('hint', { size: megabytes(config.max_upload_bytes) });
  for (const { element, photo } of tiles.values()) fillTile(element, photo);
}

// ---- uploads ----

// The operations come from /api/config: rotations are one choice, every other op a checkbox.
function buildOps() {
  const box = $('ops-choices');
  box.replaceChildren();
  const choice = (type, name, value, key) => {
    const label = document.createElement('label');
    const input = document.createElement('input');
    input.type = type;
    input.name = name;
    input.value = value;
    if (type === 'checkbox') input.id = value;
    const text = document.createElement('span');
    text.dataset.i18n = key;
    text.textContent = t(key);
    label.append(input, ' ', text);
    box.append(label);
    return input;
  };
  const ops = config.ops || [];
  const rotations = ops.filter((op) => op.startsWith('rotate'));
  if (rotations.length) {
    choice('radio', 'rotate', '', 'noRotation').checked = true;
    for (const op of rotations) choice('radio', 'rotate', op, op);
  }
  for (const op of ops.filter((op) => !op.startsWith('rotate'))) choice('checkbox', 'op', op, op);
}

function selectedOps() {
  const ops = [];
  const rotate = document.querySelector('input[name=rotate]:checked');
  if (rotate && rotate.value) ops.push(rotate.value);
  for (const box of document.querySelectorAll('input[name=op]:checked')) ops.push(box.value);
  return ops.join(',');
}

// The variants come from /api/config too: the grid shows the smallest, the lightbox the largest.
function variant(photo, largest) {
  const sizes = [...(config.variants || [])].sort((a, b) => a.max_side - b.max_side);
  const spec = largest ? sizes[sizes.length - 1] : sizes[0];
  return spec && photo.variants ? photo.variants[spec.name] : undefined;
}

function uploadRow(name) {
  const row = document.createElement('li');
  const label = document.createElement('span');
  label.textContent = name;
  const bar = document.createElement('progress');
  bar.max = 100;
  bar.value = 0;
  bar.setAttribute('aria-label', `${t('uploading')}: ${name}`);
  row.append(label, bar);
  $('uploads').prepend(row);
  return { row, bar };
}

function showError(row, message) {
  row.className = 'error';
  row.replaceChildren(document.createTextNode(message));
}

// At most this many uploads at once: the gateway allows 2 uploads/s per person (burst 20), and a
// few parallel requests already fill the connection. The rest wait their turn in `pending`.
const PARALLEL_UPLOADS = 3;
const MAX_ATTEMPTS = 8;
const pending = [];
let sending = 0;

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/// Seconds to wait from a Retry-After header (seconds or an HTTP date), or null.
function retryAfter(request) {
  const value = request.getResponseHeader('Retry-After');
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

/// Queues a file: checked here, sent when a slot is free. The form (ops, notify targets) is the
/// one set when the file was dropped.
function upload(file) {
  const { row, bar } = uploadRow(file.name);
  if (!config.accepted_types.includes(file.type)) return showError(row, t('badType', { name: file.name }));
  if (file.size > config.max_upload_bytes) {
    return showError(row, t('tooBig', { name: file.name, size: megabytes(config.max_upload_bytes) }));
  }
  const form = new FormData();
  const ops = selectedOps();
  if (ops) form.append('ops', ops);
  if ($('notify-email').value.trim()) form.append('notify_email', $('notify-email').value.trim());
  if ($('notify-telegram').value.trim()) form.append('notify_telegram', $('notify-telegram').value.trim());
  form.append('file', file, file.name);
  pending.push({ file, form, row, bar });
  pump();
}

function pump() {
  while (sending < PARALLEL_UPLOADS && pending.length > 0) {
    const item = pending.shift();
    sending += 1;
    send(item).finally(() => {
      sending -= 1;
      pump();
    });
  }
}

/// One POST; resolves with the request once it has an answer (or a network error).
function post({ form, bar }) {
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open('POST', '/api/photos');
    request.responseType = 'json';
    request.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) bar.value = Math.round((event.loaded / event.total) * 100);
    });
    request.addEventListener('load', () => resolve(request));
    request.addEventListener('error', () => resolve(null));
    request.send(form);
  });
}

/// Sends one file; on 429 (too many uploads) or 503 (the server is busy or restarting) waits as
/// long as Retry-After says, backing off further each time, then tries again.
async function send(item) {
  const { file, row, bar } = item;
  for (let attempt = 1; ; attempt++) {
    bar.value = 0;
    const request = await post(item);
    if (!request) return showError(row, t('uploadFailed', { name: file.name, error: t('networkError') }));
    const body = request.response || {};
    if (request.status === 202) {
      bar.value = 100;
      for (const photo of body.photos || []) fetchPhoto(photo.id);
      setTimeout(() => row.remove(), 4000);
      return;
    }
    const retryable = request.status === 429 || request.status === 503;
    if (!retryable || attempt >= MAX_ATTEMPTS) {
      return showError(row, t('uploadFailed', { name: file.name, error: body.error || request.statusText }));
    }
    // Retry-After if given, never less than the backoff (1 s, 2 s, 4 s, ... up to 30 s), plus
    // some jitter so that waiting uploads do not all come back at the same moment.
    const backoff = Math.min(30, 2 ** (attempt - 1));
    const wait = Math.max(retryAfter(request) ?? 0, backoff) + Math.random();
    bar.removeAttribute('value'); // indeterminate while waiting
    await pause(wait * 1000);
  }
}

function uploadAll(files) {
  for (const file of files) upload(file);
}

// ---- gallery grid ----

function fillTile(element, photo) {
  const button = element.firstElementChild;
  button.replaceChildren();
  const thumb = variant(photo, false);
  if (thumb) {
    const img = document.createElement('img');
    img.src = thumb.url;
    img.alt = photo.filename;
    img.loading = 'lazy';
    button.append(img);
  } else {
    const placeholder = document.createElement('span');
    placeholder.className = 'placeholder';
    button.append(placeholder);
  }
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = photo.filename;
  const badge = document.createElement('span');
  badge.className = `badge ${photo.status}`;
  badge.textContent = t(photo.status);
  if (photo.error) badge.title = photo.error;
  button.append(name, badge);
  button.setAttribute('aria-label', `${t('open', { name: photo.filename })} (${t(photo.status)})`);
  element.dataset.status = photo.status;
}

function showPhoto(photo, { newest } = {}) {
  let tile = tiles.get(photo.id);
  if (!tile) {
    const element = document.createElement('li');
    element.className = 'tile';
    element.dataset.id = photo.id;
    const button = document.createElement('button');
    button.type = 'button';
    button.addEventListener('click', () => openLightbox(photo.id));
    element.append(button);
    tile = { element, photo };
    tiles.set(photo.id, tile);
    const grid = $('grid');
    if (newest) {
      // Keep newest first: ids are time-ordered, so insert before the first older one.
      const older = [...grid.children].find((child) => child.dataset.id < photo.id);
      grid.insertBefore(element, older || null);
    } else {
      grid.append(element);
    }
  }
  tile.photo = photo;
  fillTile(tile.element, photo);
  $('empty').hidden = tiles.size > 0;
}

// Live events seen per photo id. An answer to a GET that was under way while an event for the
// same photo came in may be older than that event (e.g. `queued` after `done`): it is dropped,
// since the events for one photo arrive complete and in order.
const eventsSeen = new Map();

async function fetchPhoto(id) {
  const seen = eventsSeen.get(id) || 0;
  const response = await fetch(`/api/photos/${encodeURIComponent(id)}`);
  if (!response.ok) return;
  const photo = await response.json();
  if ((eventsSeen.get(id) || 0) === seen) showPhoto(photo, { newest: true });
}

async function loadMore() {
  if (loading || exhausted) return;
  loading = true;
  try {
    const query = cursor ? `?limit=30&cursor=${encodeURIComponent(cursor)}` : '?limit=30';
    const response = await fetch(`/api/photos${query}`);
    if (!response.ok) return;
    const page = await response.json();
    for (const photo of page.photos) showPhoto(photo);
    cursor = page.next_cursor;
    exhausted = !cursor;
    $('empty').hidden = tiles.size > 0;
  } finally {
    loading = false;
  }
}

async function reloadFirstPage() {
  const response = await fetch('/api/photos?limit=30');
  if (!response.ok) return;
  for (const photo of (await response.json()).photos) showPhoto(photo, { newest: true });
}

function removePhoto(id) {
  const tile = tiles.get(id);
  if (tile) tile.element.remove();
  tiles.delete(id);
  $('empty').hidden = tiles.size > 0;
}

// ---- live updates ----

function listen() {
  const events = new EventSource('/api/events');
  let opened = false;
  events.addEventListener('open', () => {
    // After a reconnect, catch up on what happened while away.
    if (opened) reloadFirstPage();
    opened = true;
  });
  events.addEventListener('photo', (message) => {
    const { type, photo } = JSON.parse(message.data);
    eventsSeen.set(photo.id, (eventsSeen.get(photo.id) || 0) + 1);
    if (type === 'photo.deleted') removePhoto(photo.id);
    else showPhoto(photo, { newest: true });
  });
  events.addEventListener('resync', () => reloadFirstPage());
}

// ---- lightbox ----

let shownId = null;

function openLightbox(id) {
  const { photo } = tiles.get(id) || {};
  if (!photo) return;
  shownId = id;
  $('lightbox-title').textContent = photo.filename;
  const preview = variant(photo, true);
  const image = $('lightbox-image');
  image.hidden = !preview;
  if (preview) {
    image.src = preview.url;
    image.alt = photo.filename;
  }
  const details = [`${photo.width}×${photo.height}`, t(photo.status)];
  if (photo.error) details.push(photo.error);
  $('lightbox-info').textContent = details.join(' · ');
  $('lightbox-download').href = photo.original_url;
  $('lightbox-download').setAttribute('download', photo.filename);
  $('lightbox').showModal();
}

async function deleteShown() {
  const { photo } = tiles.get(shownId) || {};
  if (!photo || !window.confirm(t('confirmDelete', { name: photo.filename }))) return;
  const response = await fetch(`/api/photos/${encodeURIComponent(photo.id)}`, { method: 'DELETE' });
  if (response.status === 204 || response.status === 404) {
    removePhoto(photo.id);
    $('lightbox').close();
  }
}

// ---- start ----

async function start() {
  $('lang').value = language();
  $('lang').addEventListener('change', (event) => {
    setLanguage(event.target.value);
    refreshTexts();
  });
  try {
    const response = await fetch('/api/config');
    if (response.ok) config = await response.json();
  } catch {
    // Keep the defaults: the server checks everything again anyway.
  }
  buildOps();
  refreshTexts();

  const drop = $('drop');
  const picker = $('files');
  picker.addEventListener('change', () => {
    uploadAll(picker.files);
    picker.value = '';
  });
  drop.addEventListener('click', (event) => { if (event.target !== picker) picker.click(); });
  drop.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); picker.click(); }
  });
  drop.addEventListener('dragover', (event) => { event.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    uploadAll(event.dataTransfer.files);
  });

  $('lightbox-close').addEventListener('click', () => $('lightbox').close());
  $('lightbox-delete').addEventListener('click', deleteShown);
  $('lightbox').addEventListener('close', () => {
    const tile = tiles.get(shownId);
    if (tile) tile.element.firstElementChild.focus();
  });

  listen();
  await loadMore();
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadMore();
  }).observe($('more'));
}

start();
