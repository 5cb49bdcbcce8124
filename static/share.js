// The share page (/s/TOKEN): asks /s/TOKEN/photo about the shared photo, then shows its preview,
// its name (as text) and a download of the original. An expired, revoked or unknown link gets a
// clear message. In English or Portuguese, as the browser prefers (i18n.js).
import { formatDate, t, translatePage } from './i18n.js';

const $ = (id) => document.getElementById(id);

function status(key, text) {
  const box = $('shared-status');
  box.hidden = false;
  box.className = key === 'loading' ? 'notice' : 'notice error';
  if (key) box.dataset.i18n = key;
  else delete box.dataset.i18n;
  box.textContent = key ? t(key) : text;
}

/// The token as it appears in the address, or null if the address is not /s/TOKEN.
function token() {
  const match = location.pathname.match(/^\/s\/([^/]+)\/?$/);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null;
  }
}

async function show() {
  translatePage();
  const shared = token();
  if (!shared) return status('linkGone');
  const base = `/s/${encodeURIComponent(shared)}`;
  let response;
  try {
    response = await fetch(`${base}/photo`);
  } catch {
    return status('networkError');
  }
  if (response.status === 404) return status('linkGone');
  const photo = await response.json().catch(() => null);
  if (!response.ok || !photo) return status(null, (photo && photo.error) || `${response.status} ${response.statusText}`);

  document.title = `${photo.filename} · ${t('title')}`;
  $('shared-name').textContent = photo.filename;
  const image = $('shared-image');
  image.alt = photo.filename;
  // Not processed yet (404): no picture, but the original can still be downloaded.
  image.addEventListener('error', () => {
    image.hidden = true;
    $('shared-pending').hidden = false;
  });
  image.src = photo.preview_url || `${base}/preview`;
  const download = $('shared-download');
  download.href = photo.original_url || `${base}/original`;
  download.setAttribute('download', photo.filename);
  $('shared-until').textContent = t('sharedUntil', { date: formatDate(photo.expires_at) });
  $('shared-status').hidden = true;
  $('shared').hidden = false;
}

show();
