// The logged-out page: the login form, "create the first account" while the gallery has no user,
// and accepting an invite at /invite/TOKEN. Each success hands the user to the callback given to
// `initAuth`; the page itself decides what a logged-in person sees.
import { api, json } from './api.js';
import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);
const FORMS = ['setup-form', 'invite-form', 'login-form'];
let entered = () => {};
let invite = null; // { token, email, name } while the invite form shows

/// Shows one of the forms (and the section around them), hides the others.
function only(formId) {
  for (const id of FORMS) $(id).hidden = id !== formId;
  for (const id of ['setup-error', 'invite-error', 'login-error']) $(id).hidden = true;
  $('auth').hidden = false;
}

/// A notice above the form, by i18n key so that switching the language translates it too.
function notice(key) {
  const box = $('auth-message');
  box.hidden = !key;
  if (key) {
    box.dataset.i18n = key;
    box.textContent = t(key);
  } else {
    delete box.dataset.i18n;
    box.textContent = '';
  }
}

function showError(id, message) {
  $(id).textContent = message;
  $(id).hidden = false;
}

/// Runs a form's request with its submit button disabled, so that one click sends one request.
async function busy(form, work) {
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    await work();
  } finally {
    button.disabled = false;
  }
}

export function showLogin(messageKey) {
  invite = null;
  only('login-form');
  notice(messageKey);
  $('login-password').value = '';
  $('login-email').focus();
}

export function showSetup() {
  only('setup-form');
  notice(null);
  $('setup-email').focus();
}

/// /invite/TOKEN: whose invite it is, then the form that sets the password. An unknown, used or
/// expired invite gets the login form with a notice saying so.
export async function showInvite(token) {
  let response;
  try {
    response = await api(`/api/invites/${encodeURIComponent(token)}`);
  } catch {
    return showLogin('networkError');
  }
  if (!response.ok) return inviteGone();
  const { email, name } = await response.json();
  invite = { token, email, name };
  only('invite-form');
  notice(null);
  $('invite-email').value = email;
  refreshAuthTexts();
  $('invite-password').focus();
}

function inviteGone() {
  history.replaceState(null, '', '/');
  showLogin('inviteGone');
}

export function hideAuth() {
  $('auth').hidden = true;
  for (const id of ['setup-password', 'invite-password', 'login-password']) $(id).value = '';
  notice(null);
  invite = null;
}

export function refreshAuthTexts() {
  if (invite) $('invite-who').textContent = t('inviteWho', { name: invite.name, email: invite.email });
}

/// `onEnter(user, { fresh })` runs after a login, the first-run setup or an accepted invite;
/// `fresh` is true for a new account.
export function initAuth(onEnter) {
  entered = onEnter;

  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    busy($('login-form'), async () => {
      try {
        const response = await api('/api/session', {
          method: 'POST',
          json: { email: $('login-email').value.trim(), password: $('login-password').value },
        });
        const { user } = await json(response);
        entered(user, { fresh: false });
      } catch (error) {
        showError('login-error', error instanceof TypeError ? t('networkError') : error.message);
      }
    });
  });

  $('setup-form').addEventListener('submit', (event) => {
    event.preventDefault();
    busy($('setup-form'), async () => {
      try {
        const response = await api('/api/setup', {
          method: 'POST',
          json: {
            email: $('setup-email').value.trim(),
            name: $('setup-name').value.trim(),
            password: $('setup-password').value,
          },
        });
        const { user } = await json(response);
        entered(user, { fresh: true });
      } catch (error) {
        if (error.code === 'already_set_up') {
          // Someone else was quicker: the gallery has its first account now.
          showLogin(null);
          return showError('login-error', error.message);
        }
        showError('setup-error', error instanceof TypeError ? t('networkError') : error.message);
      }
    });
  });

  $('invite-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (!invite) return;
    const { token } = invite;
    busy($('invite-form'), async () => {
      try {
        const response = await api(`/api/invites/${encodeURIComponent(token)}`, {
          method: 'POST',
          json: { password: $('invite-password').value },
        });
        if (response.status === 404) return inviteGone();
        const { user } = await json(response);
        history.replaceState(null, '', '/');
        entered(user, { fresh: true });
      } catch (error) {
        showError('invite-error', error instanceof TypeError ? t('networkError') : error.message);
      }
    });
  });
}
