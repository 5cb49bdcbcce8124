// The account menu of a logged-in person: profile (name, notification contacts, language),
// password, API tokens, and for admins the people of the gallery and their invites; and logging
// out. Secrets (a new token, an invite link) are shown once, in a read-only input, and cleared
// when the dialog closes or the person logs out. Names and e-mails are set only as text.
import { api, json } from './api.js';
import { formatDate, t } from './i18n.js';

const $ = (id) => document.getElementById(id);
const DIALOGS = ['profile-dialog', 'password-dialog', 'tokens-dialog', 'people-dialog'];

let hooks; // { user(), setUser(user), logout(), reloadPhotos() } from the page
let tokens = null; // the last lists fetched, kept to redraw them in another language
let people = null;

function showError(id, error) {
  $(id).textContent = error instanceof TypeError ? t('networkError') : error.message;
  $(id).hidden = false;
}

function clearMessages(dialog) {
  for (const box of dialog.querySelectorAll('.error, [role=status]')) {
    box.hidden = true;
    box.textContent = '';
  }
}

/// A read-only input holding something to copy: selected whole as soon as it gets focus.
function showSecret(input, value) {
  input.value = value;
  input.focus();
  input.select();
}

function open(id) {
  $('account').open = false;
  clearMessages($(id));
  $(id).showModal();
}

// ---- profile and password ----

async function openProfile() {
  open('profile-dialog');
  try {
    const me = await json(await api('/api/me'));
    $('profile-name').value = me.name;
    $('profile-notify-email').value = me.notify_email || '';
    $('profile-notify-telegram').value = me.notify_telegram || '';
    $('profile-lang').value = me.lang;
  } catch (error) {
    showError('profile-error', error);
  }
}

async function saveProfile(event) {
  event.preventDefault();
  clearMessages($('profile-dialog'));
  try {
    const me = await json(await api('/api/me', {
      method: 'PATCH',
      json: {
        name: $('profile-name').value.trim(),
        // "" clears a contact.
        notify_email: $('profile-notify-email').value.trim(),
        notify_telegram: $('profile-notify-telegram').value.trim(),
        lang: $('profile-lang').value,
      },
    }));
    hooks.setUser(me); // may switch the page's language: the status below is written after
    $('profile-status').textContent = t('saved');
    $('profile-status').hidden = false;
  } catch (error) {
    showError('profile-error', error);
  }
}

function openPassword() {
  open('password-dialog');
  $('password-username').value = hooks.user().email;
  $('password-current').value = '';
  $('password-new').value = '';
  $('password-current').focus();
}

async function savePassword(event) {
  event.preventDefault();
  clearMessages($('password-dialog'));
  try {
    // A wrong current password is a 401 "bad_credentials": an error of this form, not a lost session.
    await json(await api('/api/me', {
      method: 'PATCH',
      json: { current_password: $('password-current').value, password: $('password-new').value },
    }));
    $('password-current').value = '';
    $('password-new').value = '';
    $('password-status').textContent = t('passwordChanged');
    $('password-status').hidden = false;
  } catch (error) {
    showError('password-error', error);
  }
}

// ---- API tokens ----

function renderTokens() {
  const list = $('token-list');
  list.replaceChildren();
  if (!tokens) return;
  if (tokens.length === 0) {
    const none = document.createElement('li');
    none.className = 'hint';
    none.textContent = t('noTokens');
    list.append(none);
  }
  for (const token of tokens) {
    const row = document.createElement('li');
    row.dataset.id = token.id;
    const name = document.createElement('span');
    name.className = 'token-name';
    name.textContent = token.name;
    const dates = document.createElement('span');
    dates.className = 'hint';
    const used = token.last_used_at ? t('tokenUsed', { date: formatDate(token.last_used_at) }) : t('tokenNeverUsed');
    dates.textContent = t('tokenDates', { created: formatDate(token.created_at), used });
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'danger';
    remove.textContent = t('delete');
    remove.addEventListener('click', () => deleteToken(token));
    row.append(name, dates, remove);
    list.append(row);
  }
}

async function loadTokens() {
  try {
    tokens = (await json(await api('/api/tokens'))).tokens;
    renderTokens();
  } catch (error) {
    showError('tokens-error', error);
  }
}

function openTokens() {
  open('tokens-dialog');
  $('token-created').hidden = true;
  $('token-value').value = '';
  loadTokens();
}

async function createToken(event) {
  event.preventDefault();
  clearMessages($('tokens-dialog'));
  try {
    const created = await json(await api('/api/tokens', { method: 'POST', json: { name: $('token-name').value.trim() } }));
    $('token-name').value = '';
    $('token-created').hidden = false;
    showSecret($('token-value'), created.token);
    await loadTokens();
  } catch (error) {
    showError('tokens-error', error);
  }
}

async function deleteToken(token) {
  if (!window.confirm(t('confirmDeleteToken', { name: token.name }))) return;
  clearMessages($('tokens-dialog'));
  try {
    const response = await api(`/api/tokens/${encodeURIComponent(token.id)}`, { method: 'DELETE' });
    if (response.status !== 404) await json(response); // 404: deleted already, as wanted
    await loadTokens();
  } catch (error) {
    showError('tokens-error', error);
  }
}

// ---- people (admins) ----

function renderPeople() {
  const list = $('people-list');
  list.replaceChildren();
  if (!people) return;
  const me = hooks.user();
  for (const person of people) {
    const row = document.createElement('li');
    row.dataset.id = person.id;
    const who = document.createElement('span');
    who.className = 'person';
    const name = document.createElement('strong');
    name.className = 'person-name';
    name.textContent = person.name;
    const email = document.createElement('span');
    email.className = 'hint';
    email.textContent = person.email;
    who.append(name, ' ', email);
    if (person.id === me.id) who.append(' ', t('you'));
    if (person.pending) {
      const badge = document.createElement('span');
      badge.className = 'badge pending';
      badge.textContent = t('pending');
      who.append(' ', badge);
    }
    const role = document.createElement('select');
    role.className = 'person-role';
    role.setAttribute('aria-label', `${t('role')}: ${person.name}`);
    for (const value of ['member', 'admin']) role.append(new Option(t(value), value, false, value === person.role));
    role.addEventListener('change', () => changeRole(person, role.value));
    row.append(who, role);
    if (person.id !== me.id) {
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'danger';
      remove.textContent = t('remove');
      remove.addEventListener('click', () => removePerson(person));
      row.append(remove);
    }
    list.append(row);
  }
}

async function loadPeople() {
  try {
    people = (await json(await api('/api/users'))).users;
    renderPeople();
  } catch (error) {
    showError('people-error', error);
  }
}

function openPeople() {
  open('people-dialog');
  $('person-invited').hidden = true;
  $('person-invite-url').value = '';
  loadPeople();
}

async function invitePerson(event) {
  event.preventDefault();
  clearMessages($('people-dialog'));
  try {
    const answer = await json(await api('/api/users', {
      method: 'POST',
      json: { email: $('person-email').value.trim(), name: $('person-name').value.trim(), role: $('person-role').value },
    }));
    $('person-form').reset();
    $('person-invited-text').textContent = t('inviteOnce', { name: answer.user.name, date: formatDate(answer.expires_at) });
    $('person-invited').hidden = false;
    showSecret($('person-invite-url'), location.origin + answer.invite_url);
    await loadPeople();
  } catch (error) {
    showError('people-error', error);
  }
}

async function changeRole(person, role) {
  clearMessages($('people-dialog'));
  try {
    const updated = await json(await api(`/api/users/${encodeURIComponent(person.id)}`, { method: 'PATCH', json: { role } }));
    if (updated.id === hooks.user().id) hooks.setUser(updated); // an admin who made themselves a member
  } catch (error) {
    showError('people-error', error); // e.g. 409 last_admin
  }
  await loadPeople(); // shows the role as the server has it, also after a refusal
}

async function removePerson(person) {
  if (!window.confirm(t('confirmRemove', { name: person.name }))) return;
  clearMessages($('people-dialog'));
  try {
    const response = await api(`/api/users/${encodeURIComponent(person.id)}`, { method: 'DELETE' });
    if (response.status !== 404) await json(response);
    hooks.reloadPhotos(); // their photos have a new owner now
  } catch (error) {
    showError('people-error', error);
  }
  await loadPeople();
}

// ---- the menu ----

/// The menu for this user: name in the summary, "People" only for admins.
export function showAccount(user) {
  $('account-name').textContent = user.name;
  $('menu-people').hidden = user.role !== 'admin';
  $('account').hidden = false;
  if (user.role !== 'admin' && $('people-dialog').open) $('people-dialog').close();
}

/// Logged out: closes everything and forgets what was shown.
export function hideAccount() {
  $('account').open = false;
  $('account').hidden = true;
  for (const id of DIALOGS) if ($(id).open) $(id).close();
  for (const id of ['token-value', 'person-invite-url', 'password-current', 'password-new']) $(id).value = '';
  tokens = null;
  people = null;
  renderTokens();
  renderPeople();
}

export function refreshAccountTexts() {
  renderTokens();
  if (hooks && hooks.user()) renderPeople();
}

export function initAccount(pageHooks) {
  hooks = pageHooks;
  $('menu-profile').addEventListener('click', openProfile);
  $('menu-password').addEventListener('click', openPassword);
  $('menu-tokens').addEventListener('click', openTokens);
  $('menu-people').addEventListener('click', openPeople);
  $('menu-logout').addEventListener('click', () => {
    $('account').open = false;
    hooks.logout();
  });
  $('profile-form').addEventListener('submit', saveProfile);
  $('password-form').addEventListener('submit', savePassword);
  $('token-form').addEventListener('submit', createToken);
  $('person-form').addEventListener('submit', invitePerson);
  for (const id of DIALOGS) {
    const dialog = $(id);
    for (const button of dialog.querySelectorAll('.close-dialog')) button.addEventListener('click', () => dialog.close());
  }
  // Secrets are shown once: closing the dialog forgets them.
  $('tokens-dialog').addEventListener('close', () => { $('token-value').value = ''; $('token-created').hidden = true; });
  $('people-dialog').addEventListener('close', () => { $('person-invite-url').value = ''; $('person-invited').hidden = true; });
  for (const input of document.querySelectorAll('input.secret')) input.addEventListener('focus', () => input.select());
  // A click anywhere else closes the open menu.
  document.addEventListener('click', (event) => {
    if ($('account').open && !$('account').contains(event.target)) $('account').open = false;
  });
}
