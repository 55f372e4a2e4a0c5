// The account page: sign in with tenure's refresh cookie, see and end your sessions, change
// your password. No framework, no build step; served as-is by tenure at /account.
//
// Where the credentials live:
// - the access token (the session JWT) is in `accessToken` below, in memory only: never in
//   localStorage, sessionStorage or a cookie, so it dies with the page;
// - the refresh credential is an HttpOnly cookie, scoped to /api/v2/user/session, that this
//   script never sees. A reload, or a call that answers "expired", gets a new access token from
//   PUT /api/v2/user/session, which the browser sends the cookie to.
// Every request sends `X-Requested-With`, the custom header tenure's CSRF defence requires of
// requests that carry the cookie. Text from the server (device names, user agents) is only ever
// written with textContent, never parsed as HTML.
'use strict';

(() => {
  const SESSION = '/api/v2/user/session';
  const SESSIONS = '/api/v2/user/sessions';
  const PASSWORD = '/api/v2/user/password';
  const CSRF = { 'X-Requested-With': 'tenure-account' };

  /** The session JWT, in memory only. */
  let accessToken = null;
  /** The refresh in flight, shared by every caller that needs one at the same time. */
  let refreshing = null;

  const $ = (id) => document.getElementById(id);

  /** A refused call: its HTTP status and tenure's `error.context.reason`. */
  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || `The server answered ${status}.`);
      this.status = status;
      this.context = error.context || null;
      this.reason = (this.context && this.context.reason) || null;
    }
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  function request(method, path, headers, body) {
    return fetch(path, {
      method,
      headers: { ...CSRF, ...headers },
      body,
      credentials: 'same-origin',
      cache: 'no-store',
    });
  }

  /** A new access token through the refresh cookie; throws ApiError when it no longer works. */
  function refresh() {
    if (!refreshing) {
      refreshing = (async () => {
        const response = await request('PUT', SESSION, {});
        const body = await readJson(response);
        if (!response.ok || !body || !body.session_token) {
          accessToken = null;
          throw new ApiError(response.status, body);
        }
        accessToken = body.session_token;
        return body;
      })().finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  /**
   * An API call with the access token. A token that expired, or that another tab's refresh
   * replaced (`rotated`), is renewed through the cookie and the call made once more.
   */
  async function call(method, path, body) {
    for (let attempt = 0; ; attempt += 1) {
      const headers = {};
      if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      const response = await request(
        method,
        path,
        headers,
        body === undefined ? undefined : JSON.stringify(body),
      );
      const answer = await readJson(response);
      if (response.ok) return answer;
      const error = new ApiError(response.status, answer);
      if (attempt === 0 && (error.reason === 'expired' || error.reason === 'rotated')) {
        await refresh();
        continue;
      }
      throw error;
    }
  }

  // ---------------------------------------------------------------------------------------
  // What the page says

  function say(text) {
    $('alert').textContent = '';
    $('status').textContent = text || '';
  }

  function warn(text) {
    $('status').textContent = '';
    $('alert').textContent = text;
  }

  /** Whether an error means this browser is no longer signed in. */
  function signedOutBy(error) {
    return (
      error instanceof ApiError &&
      (error.status === 401 || (error.status === 403 && error.reason !== 'csrf'))
    );
  }

  function describe(error) {
    if (!(error instanceof ApiError)) {
      return 'The server could not be reached. Check your connection and try again.';
    }
    if (error.status === 400 && error.context && typeof error.context === 'object') {
      const details = Object.values(error.context)
        .flat()
        .filter((v) => typeof v === 'string');
      if (details.length) return details.join(' ');
    }
    return error.message;
  }

  /** The common end of a failed action: back to the sign-in form, or a message. */
  function failed(error) {
    if (signedOutBy(error)) {
      showSignIn('You have been signed out. Please sign in again.');
    } else {
      warn(describe(error));
    }
  }

  /** Disables a form's or a button's controls while its request runs. */
  async function busy(element, action) {
    const controls = element.matches('form') ? [...element.elements] : [element];
    controls.forEach((c) => {
      c.disabled = true;
    });
    element.setAttribute('aria-busy', 'true');
    try {
      return await action();
    } finally {
      controls.forEach((c) => {
        c.disabled = false;
      });
      element.removeAttribute('aria-busy');
    }
  }

  function setState(state) {
    document.body.dataset.state = state;
    $('loading').hidden = state !== 'loading';
    $('signin').hidden = state !== 'signed-out';
    $('account').hidden = state !== 'signed-in';
  }

  function showSignIn(message) {
    accessToken = null;
    $('devices').replaceChildren();
    $('password-form').reset();
    setState('signed-out');
    if (message) say(message);
    $('signin-email').focus();
  }

  async function showAccount(user, message) {
    $('who-name').textContent = user.name || user.email;
    $('who-email').textContent = user.name && user.email ? `(${user.email})` : '';
    $('signin-password').value = '';
    setState('signed-in');
    say(message || '');
    await loadDevices();
  }

  // ---------------------------------------------------------------------------------------
  // Where you're signed in

  /** "2026-11-23 10:33:29" (UTC, DreamFactory's format) as local time. */
  function localTime(text) {
    const date = new Date(`${String(text).replace(' ', 'T')}Z`);
    if (Number.isNaN(date.getTime())) return { label: String(text), iso: '' };
    return {
      label: date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }),
      iso: date.toISOString(),
    };
  }

  /** The browser and its major version named by a User-Agent. */
  function browserName(agent) {
    if (!agent) return 'Unknown';
    const known = [
      [/Edg(?:e|A|iOS)?\/(\d+)/, 'Edge'],
      [/OPR\/(\d+)/, 'Opera'],
      [/SamsungBrowser\/(\d+)/, 'Samsung Internet'],
      [/Firefox\/(\d+)/, 'Firefox'],
      [/FxiOS\/(\d+)/, 'Firefox'],
      [/CriOS\/(\d+)/, 'Chrome'],
      [/HeadlessChrome\/(\d+)/, 'Headless Chrome'],
      [/Chromium\/(\d+)/, 'Chromium'],
      [/Chrome\/(\d+)/, 'Chrome'],
      [/Version\/(\d+)[^ ]* (?:Mobile\/\S+ )?Safari\//, 'Safari'],
    ];
    for (const [pattern, name] of known) {
      const match = agent.match(pattern);
      if (match) return `${name} ${match[1]}`;
    }
    return agent.length > 60 ? `${agent.slice(0, 60)}…` : agent;
  }

  function detail(list, term, value, iso) {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    if (iso) {
      const time = document.createElement('time');
      time.dateTime = iso;
      time.textContent = value;
      dd.append(time);
    } else {
      dd.textContent = value;
    }
    list.append(dt, dd);
  }

  function deviceItem(session) {
    const name = session.device || browserName(session.user_agent);
    const item = document.createElement('li');
    item.className = 'device';
    item.dataset.sessionId = session.id;
    item.dataset.current = String(Boolean(session.current));

    const info = document.createElement('div');
    info.className = 'info';
    const title = document.createElement('h3');
    title.textContent = name;
    if (session.current) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'This device';
      title.append(' ', badge);
    }
    const list = document.createElement('dl');
    detail(list, 'Browser', browserName(session.user_agent));
    detail(list, 'IP address', session.ip || 'Unknown');
    const seen = localTime(session.last_seen_at);
    detail(list, 'Last seen', session.current ? 'Now' : seen.label, session.current ? '' : seen.iso);
    const since = localTime(session.created_at);
    detail(list, 'Signed in', since.label, since.iso);
    detail(list, 'Stays signed in', session.forever ? 'Yes' : 'No');
    info.append(title, list);
    item.append(info);

    if (!session.current) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'secondary end-session';
      button.textContent = 'Sign out';
      button.setAttribute('aria-label', `Sign out ${name}${session.ip ? `, ${session.ip}` : ''}`);
      button.addEventListener('click', () => endSession(button, session.id, name));
      item.append(button);
    }
    return item;
  }

  async function loadDevices() {
    const answer = await call('GET', SESSIONS);
    const sessions = (answer && answer.resource) || [];
    // This device first, then the others newest first (the server's order).
    sessions.sort((a, b) => Number(Boolean(b.current)) - Number(Boolean(a.current)));
    $('devices').replaceChildren(...sessions.map(deviceItem));
    $('signout-others').hidden = !sessions.some((s) => !s.current);
  }

  async function endSession(button, id, name) {
    try {
      await busy(button, () => call('DELETE', `${SESSIONS}/${encodeURIComponent(id)}`));
      say(`Signed out ${name}.`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        say(`${name} was already signed out.`);
      } else {
        failed(error);
        return;
      }
    }
    try {
      await loadDevices();
    } catch (error) {
      failed(error);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Actions

  async function signIn(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const email = $('signin-email').value.trim();
    const password = $('signin-password').value;
    if (!email || !password) {
      warn('Enter your email and your password.');
      (email ? $('signin-password') : $('signin-email')).focus();
      return;
    }
    try {
      const user = await busy(form, async () => {
        const response = await request(
          'POST',
          SESSION,
          { 'Content-Type': 'application/json', 'X-Tenure-Refresh': 'cookie' },
          JSON.stringify({ email, password, remember_me: $('signin-remember').checked }),
        );
        const body = await readJson(response);
        if (!response.ok || !body || !body.session_token) {
          throw new ApiError(response.status, body);
        }
        return body;
      });
      accessToken = user.session_token;
      await showAccount(user, 'You are signed in.');
    } catch (error) {
      if (error instanceof ApiError && error.reason === 'invalid_credentials') {
        warn('That email and password do not match an account.');
        $('signin-password').focus();
      } else if ($('account').hidden) {
        warn(describe(error));
      } else {
        failed(error);
      }
    }
  }

  async function signOut(event) {
    try {
      await busy(event.currentTarget, () => call('DELETE', SESSION));
    } catch (error) {
      if (!signedOutBy(error)) {
        warn(describe(error));
        return;
      }
    }
    showSignIn('You are signed out.');
  }

  async function signOutOthers(event) {
    try {
      const answer = await busy(event.currentTarget, () =>
        call('DELETE', `${SESSION}?scope=others`),
      );
      const ended = (answer && answer.ended) || 0;
      say(
        ended === 1
          ? 'Signed out 1 other device.'
          : `Signed out ${ended} other devices.`,
      );
      await loadDevices();
    } catch (error) {
      failed(error);
    }
  }

  async function changePassword(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const oldPassword = $('password-old').value;
    const newPassword = $('password-new').value;
    if (!oldPassword || !newPassword) {
      warn('Enter your current password and a new one.');
      return;
    }
    if (newPassword !== $('password-confirm').value) {
      warn('The two new passwords are not the same.');
      $('password-confirm').focus();
      return;
    }
    try {
      const answer = await busy(form, () =>
        call('POST', PASSWORD, { old_password: oldPassword, new_password: newPassword }),
      );
      form.reset();
      const ended = (answer && answer.ended) || 0;
      say(
        ended
          ? `Your password is changed, and ${ended} other ${ended === 1 ? 'session was' : 'sessions were'} signed out.`
          : 'Your password is changed.',
      );
      await loadDevices();
    } catch (error) {
      failed(error);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Start: the cookie signs this browser back in, or the sign-in form shows.

  async function start() {
    $('signin-form').addEventListener('submit', signIn);
    $('password-form').addEventListener('submit', changePassword);
    $('signout').addEventListener('click', signOut);
    $('signout-others').addEventListener('click', signOutOthers);
    let user;
    try {
      user = await refresh();
    } catch (error) {
      showSignIn();
      if (!(error instanceof ApiError)) warn(describe(error));
      return;
    }
    try {
      await showAccount(user);
    } catch (error) {
      failed(error);
    }
  }

  start();
})();
