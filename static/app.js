// The gallery page. Logged out it shows only the login form (or first-run setup, or an invite:
// auth.js); logged in, uploads with progress, a newest-first grid that loads more on scroll and
// updates live from /api/events, a lightbox with sharing, the account menu (account.js), and for
// admins the processing view at /#admin (admin.js).
// File names and every other user-provided string are only ever set as text.
import { api, checkSession, json, onSessionLost } from './api.js';
import { hideAccount, initAccount, refreshAccountTexts, showAccount } from './account.js';
import { hideAdmin, initAdmin, refreshAdminTexts, showAdminEntry } from './admin.js';
import { hideAuth, initAuth, refreshAuthTexts, showInvite, showLogin, showSetup } from './auth.js';
import { formatDate, language, setLanguage, t, translatePage } from './i18n.js';

const $ = (id) => document.getElementById(id);
const tiles = new Map(); // photo id -> { element, photo }
let config = { max_upload_bytes: 50 * 1024 * 1024, accepted_types: ['image/jpeg', 'image/png', 'image/webp'] };
let cursor = null;
let loading = null; // the epoch of the page load under way, if any
let exhausted = false;

// The person logged in, or null. `session` counts logins and logouts, `epoch` those and every
// fresh start of the grid: an answer to a request made in an earlier one is dropped, so nothing
// of a logged-out session (or of a grid thrown away) reaches the page again.
let user = null;
let session = 0;
let epoch = 0;

/// May this person delete or share this photo? The server decides again on each request.
const canManage = (photo) => Boolean(user) && (user.role === 'admin' || (photo.owner != null && photo.owner.id === user.id));

const megabytes = (bytes) => `${Math.round(bytes / 1024 / 1024)} MB`;

function refreshTexts() {
  translatePage();
  $('drop-hint').textContent = t('hint', { size: megabytes(config.max_upload_bytes) });
  for (const { element, photo } of tiles.values()) fillTile(element, photo);
  const shown = tiles.get(shownId);
  if (shown && $('lightbox').open) lightboxTexts(shown.photo);
  refreshAuthTexts();
  refreshAccountTexts();
  refreshAdminTexts();
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
const inFlight = new Set(); // requests under way, aborted at logout
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

/// Queues a file: checked here, sent when a slot is free. The ops are the ones chosen when the
/// file was dropped. (Notifications go to the uploader's profile contacts: nothing to send.)
function upload(file) {
  const { row, bar } = uploadRow(file.name);
  if (!config.accepted_types.includes(file.type)) return showError(row, t('badType', { name: file.name }));
  if (file.size > config.max_upload_bytes) {
    return showError(row, t('tooBig', { name: file.name, size: megabytes(config.max_upload_bytes) }));
  }
  const form = new FormData();
  const ops = selectedOps();
  if (ops) form.append('ops', ops);
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
    request.addEventListener('abort', () => resolve(null));
    request.addEventListener('loadend', () => inFlight.delete(request));
    inFlight.add(request);
    request.send(form);
  });
}

/// Sends one file; on 429 (too many uploads) or 503 (the server is busy or restarting) waits as
/// long as Retry-After says, backing off further each time, then tries again.
async function send(item) {
  const { file, row, bar } = item;
  const mine = session;
  for (let attempt = 1; ; attempt++) {
    bar.value = 0;
    const request = await post(item);
    if (mine !== session) return; // logged out meanwhile: the row is gone already
    if (!request) return showError(row, t('uploadFailed', { name: file.name, error: t('networkError') }));
    const body = request.response || {};
    checkSession(request.status, body);
    if (mine !== session) return;
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
    if (mine !== session) return;
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
  const owner = document.createElement('span');
  owner.className = 'owner';
  owner.textContent = photo.owner ? photo.owner.name : '';
  const badge = document.createElement('span');
  badge.className = `badge ${photo.status}`;
  badge.textContent = t(photo.status);
  if (photo.error) badge.title = photo.error;
  button.append(name, owner, badge);
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

/// GET of the API's JSON for the current session; null if it failed or the session changed.
async function load(path) {
  const mine = epoch;
  try {
    const response = await api(path);
    if (!response.ok) return null;
    const body = await response.json();
    return mine === epoch ? body : null;
  } catch {
    return null;
  }
}

async function fetchPhoto(id) {
  const seen = eventsSeen.get(id) || 0;
  const photo = await load(`/api/photos/${encodeURIComponent(id)}`);
  if (photo && (eventsSeen.get(id) || 0) === seen) showPhoto(photo, { newest: true });
}

async function loadMore() {
  if (!user || loading === epoch || exhausted) return;
  const mine = epoch;
  loading = mine;
  try {
    const query = cursor ? `?limit=30&cursor=${encodeURIComponent(cursor)}` : '?limit=30';
    const page = await load(`/api/photos${query}`);
    if (!page) return;
    for (const photo of page.photos) showPhoto(photo);
    cursor = page.next_cursor;
    exhausted = !cursor;
    $('empty').hidden = tiles.size > 0;
  } finally {
    if (loading === mine) loading = null;
  }
}

async function reloadFirstPage() {
  const page = await load('/api/photos?limit=30');
  if (page) for (const photo of page.photos) showPhoto(photo, { newest: true });
}

/// Empties the grid; the next loadMore starts from the newest photo again.
function clearGrid() {
  tiles.clear();
  eventsSeen.clear();
  $('grid').replaceChildren();
  $('empty').hidden = true;
  cursor = null;
  exhausted = false;
  loading = null;
}

/// Everything again from the top (e.g. after the owners of photos changed).
function reloadPhotos() {
  epoch += 1; // answers still coming for the old grid are dropped
  clearGrid();
  loadMore();
}

function removePhoto(id) {
  const tile = tiles.get(id);
  if (tile) tile.element.remove();
  tiles.delete(id);
  $('empty').hidden = tiles.size > 0;
}

// ---- live updates ----

let events = null; // the open EventSource while logged in

function listen() {
  stopListening();
  const source = new EventSource('/api/events');
  events = source;
  let opened = false;
  source.addEventListener('open', () => {
    // After a reconnect, catch up on what happened while away.
    if (opened) reloadFirstPage();
    opened = true;
  });
  source.addEventListener('photo', (message) => {
    const { type, photo } = JSON.parse(message.data);
    eventsSeen.set(photo.id, (eventsSeen.get(photo.id) || 0) + 1);
    if (type === 'photo.deleted') removePhoto(photo.id);
    else showPhoto(photo, { newest: true });
  });
  source.addEventListener('resync', () => reloadFirstPage());
  source.addEventListener('error', async () => {
    // The browser retries by itself, except after an answer that is not a stream (a 401 once the
    // session ended, a 5xx): then ask whether the session is still there, and if so try again later.
    if (source.readyState !== EventSource.CLOSED || events !== source) return;
    let response = null;
    try {
      response = await api('/api/session');
    } catch {
      // network trouble: try again later
    }
    if (response && response.status === 401) return; // the login form is back (onSessionLost)
    setTimeout(() => { if (events === source) listen(); }, 5000);
  });
}

function stopListening() {
  if (events) events.close();
  events = null;
}

// ---- lightbox ----

let shownId = null;

function lightboxTexts(photo) {
  $('lightbox-owner').textContent = photo.owner ? t('owner', { name: photo.owner.name }) : '';
  const details = [`${photo.width}×${photo.height}`, t(photo.status)];
  if (photo.error) details.push(photo.error);
  $('lightbox-info').textContent = details.join(' · ');
}

function lightboxError(error) {
  $('lightbox-error').textContent = error instanceof TypeError ? t('networkError') : error.message;
  $('lightbox-error').hidden = false;
}

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
  lightboxTexts(photo);
  $('lightbox-download').href = photo.original_url;
  $('lightbox-download').setAttribute('download', photo.filename);
  const mine = canManage(photo);
  $('lightbox-delete').hidden = !mine;
  $('lightbox-share').hidden = !mine;
  $('lightbox-error').hidden = true;
  resetShare();
  $('lightbox').showModal();
}

async function deleteShown() {
  const { photo } = tiles.get(shownId) || {};
  if (!photo || !window.confirm(t('confirmDelete', { name: photo.filename }))) return;
  try {
    const response = await api(`/api/photos/${encodeURIComponent(photo.id)}`, { method: 'DELETE' });
    if (response.status !== 404) await json(response); // 404: gone already, as wanted
    removePhoto(photo.id);
    $('lightbox').close();
  } catch (error) {
    lightboxError(error);
  }
}

// ---- share links ----

function resetShare() {
  $('share').hidden = true;
  $('lightbox-share').setAttribute('aria-expanded', 'false');
  $('share-url').hidden = true;
  $('share-url').value = '';
  $('share-until').hidden = true;
  $('share-error').hidden = true;
}

function toggleShare() {
  const open = $('share').hidden;
  $('share').hidden = !open;
  $('lightbox-share').setAttribute('aria-expanded', String(open));
  if (open) $('share-expiry').focus();
}

async function createShareLink(event) {
  event.preventDefault();
  const id = shownId;
  $('share-error').hidden = true;
  try {
    const link = await json(await api(`/api/photos/${encodeURIComponent(id)}/links`, {
      method: 'POST',
      json: { expires_in_s: Number($('share-expiry').value) },
    }));
    if (shownId !== id || !$('lightbox').open) return;
    $('share-until').textContent = t('shareUntil', { date: formatDate(link.expires_at) });
    $('share-until').hidden = false;
    const url = $('share-url');
    url.value = location.origin + link.url;
    url.hidden = false;
    url.focus();
    url.select();
  } catch (error) {
    $('share-error').textContent = error instanceof TypeError ? t('networkError') : error.message;
    $('share-error').hidden = false;
  }
}

// ---- logging in and out ----

/// The language of the page, applied at once; the profile keeps it when someone is logged in.
function applyLanguage(lang) {
  if (!lang || lang === language()) return;
  setLanguage(lang);
  $('lang').value = language();
  refreshTexts();
}

async function saveLanguage(lang) {
  const mine = session;
  try {
    const me = await json(await api('/api/me', { method: 'PATCH', json: { lang } }));
    if (mine === session) user = me;
  } catch {
    // The page keeps the language anyway; the profile gets it the next time it is saved.
  }
}

/// Logged in: the profile's language (a new account keeps the one chosen on the page), the
/// menu, the grid and the live feed.
function enter(signedIn, { fresh = false } = {}) {
  session += 1;
  epoch += 1;
  user = signedIn;
  hideAuth();
  if (fresh && user.lang !== language()) saveLanguage(language());
  else applyLanguage(user.lang);
  showAccount(user);
  $('app').hidden = false;
  showAdminEntry();
  clearGrid();
  listen();
  loadMore();
}

/// Logged out (by the menu, or the session ended): nothing of the gallery stays on the page.
function leave(messageKey) {
  session += 1;
  epoch += 1;
  user = null;
  stopListening();
  pending.length = 0;
  for (const request of inFlight) request.abort();
  $('uploads').replaceChildren();
  if ($('lightbox').open) $('lightbox').close();
  shownId = null;
  $('lightbox-image').removeAttribute('src');
  resetShare();
  hideAccount();
  hideAdmin();
  clearGrid();
  $('app').hidden = true;
  showLogin(messageKey);
}

async function logout() {
  try {
    const response = await api('/api/session', { method: 'DELETE' });
    if (response.status !== 401) await json(response); // 401: the session was over anyway
  } catch (error) {
    // Still logged in on the server: say so rather than pretend.
    window.alert(error instanceof TypeError ? t('networkError') : error.message);
    return;
  }
  if (user) leave(null);
}

/// The account menu changed the user (profile saved, own role changed).
function setUser(updated) {
  user = updated;
  applyLanguage(updated.lang);
  showAccount(updated);
  showAdminEntry();
}

// ---- start ----

async function start() {
  $('lang').value = language();
  $('lang').addEventListener('change', (event) => {
    setLanguage(event.target.value);
    refreshTexts();
    if (user) saveLanguage(language());
  });
  try {
    const response = await fetch('/api/config');
    if (response.ok) config = await response.json();
  } catch {
    // Keep the defaults: the server checks everything again anyway.
  }
  buildOps();
  initAuth(enter);
  initAccount({ user: () => user, setUser, logout, reloadPhotos });
  initAdmin({ user: () => user });
  onSessionLost(() => { if (user) leave('sessionEnded'); });
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
  $('lightbox-share').addEventListener('click', toggleShare);
  $('share').addEventListener('submit', createShareLink);
  $('lightbox').addEventListener('close', () => {
    const tile = tiles.get(shownId);
    if (tile) tile.element.firstElementChild.focus();
  });

  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadMore();
  }).observe($('more'));

  // Who is this? First run, an invite link, a session, or nobody yet.
  if (config.setup_required) return showSetup();
  const invite = location.pathname.match(/^\/invite\/([^/]+)\/?$/);
  if (invite) return showInvite(decodeURIComponent(invite[1]));
  try {
    const response = await api('/api/session');
    if (response.ok) return enter((await response.json()).user);
  } catch {
    // The server cannot be reached: the login form says so when used.
  }
  showLogin(null);
}

start();
