// Calls from the page to the gallery's JSON API. The session cookie goes along by itself (same
// origin). A 401 with code "unauthorized" on any call means the session is gone (logged out
// elsewhere, expired, ended by a password change): every such answer goes to the one handler set
// with `onSessionLost`, which brings back the login form. Other 401s (a wrong password:
// "bad_credentials") are ordinary errors for the form that sent them.

let sessionLost = () => {};

export function onSessionLost(handler) {
  sessionLost = handler;
}

/// Reports an answer's status and JSON body; called for fetch and XMLHttpRequest answers alike.
export function checkSession(status, body) {
  if (status === 401 && body && body.code === 'unauthorized') sessionLost();
}

/// fetch() with a JSON body when `json` is given. Throws on network errors, like fetch.
export async function api(path, { method = 'GET', json } = {}) {
  const init = { method };
  if (json !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(json);
  }
  const response = await fetch(path, init);
  if (response.status === 401) checkSession(401, await response.clone().json().catch(() => null));
  return response;
}

/// The JSON body of a successful answer, or throws an Error carrying the server's "error" text.
export async function json(response) {
  const body = await response.json().catch(() => null);
  if (response.ok) return body;
  const error = new Error((body && body.error) || `${response.status} ${response.statusText}`);
  error.status = response.status;
  error.code = body && body.code;
  throw error;
}
