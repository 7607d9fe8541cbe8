// The console: sign in with an API token (traded for a short-lived
// session cookie this script never sees), then the pages of the session's
// role, routed by the location's hash (#/plugins/<name>). Pages come from
// operator.js and marketer.js, which each export `strings` and `pages`
// ({id, nav, roles, render(ctx, params) → Node}); docs/console.md.

import { Api, ApiError } from '/ui/shared/api.js';
import { byId, fill, h } from '/ui/shared/dom.js';
import { I18n } from '/ui/shared/i18n.js';
import { STRINGS } from '/ui/console/strings.js';
import * as operator from '/ui/console/operator.js';
import * as marketer from '/ui/console/marketer.js';

const MODULES = [operator, marketer];

/** The shell's strings with every page module's merged over them. */
function mergedStrings() {
  const merged = {};
  for (const lang of Object.keys(STRINGS)) {
    merged[lang] = Object.assign({}, STRINGS[lang], ...MODULES.map((m) => (m.strings || {})[lang] || {}));
  }
  return merged;
}

const api = new Api();
const i18n = new I18n(mergedStrings(), 'tessera.console.lang');
const t = (key, params) => i18n.t(key, params);

const HOME = {
  id: 'home',
  nav: 'navHome',
  roles: ['operator', 'marketer', 'analyst'],
  render: async (ctx) => home(ctx),
};
const PAGES = [HOME, ...MODULES.flatMap((m) => m.pages || [])];

const state = {
  session: null,
  expiryTimer: null,
  // Each navigation's number: a page that finishes loading after the
  // person moved on is dropped.
  routeSeq: 0,
};

// ---- messages --------------------------------------------------------------

function notice(text) {
  byId('notice').textContent = text;
}

function clearAlert() {
  const alert = byId('alert');
  alert.hidden = true;
  alert.textContent = '';
}

/** The text of an error: a page's own sentence as it is; for the API's,
 *  the translation of its code if there is one, else the server's own
 *  message (which names what was wrong). */
function describe(error) {
  if (typeof error === 'string') return error;
  if (error instanceof ApiError) {
    const key = 'error_' + error.code;
    const params = { ...(error.details || {}), message: error.message };
    return i18n.has(key) ? t(key, params) : t('error', { message: error.message });
  }
  return t('error', { message: String(error && error.message ? error.message : error) });
}

function showError(error) {
  const alert = byId('alert');
  alert.textContent = describe(error);
  alert.hidden = false;
}

/** Shows an error (an ApiError, or a sentence of the page's own); one that
 *  means the session ended leaves the console. */
function fail(error) {
  if (error instanceof ApiError && error.status === 401 && state.session) {
    sessionEnded();
    return;
  }
  showError(error);
}

async function act(work) {
  clearAlert();
  try {
    await work();
  } catch (error) {
    fail(error);
  }
}

// ---- session ---------------------------------------------------------------

function roleName(role) {
  return i18n.has('role_' + role) ? t('role_' + role) : role;
}

function visiblePages() {
  const role = state.session && state.session.role;
  return PAGES.filter((page) => (page.roles || []).includes(role));
}

function showSignIn() {
  state.session = null;
  api.csrfToken = null;
  window.clearTimeout(state.expiryTimer);
  byId('view-sign-in').hidden = false;
  byId('page').hidden = true;
  byId('nav').hidden = true;
  byId('menu').hidden = true;
  byId('who').hidden = true;
  byId('sign-out').hidden = true;
  fill(byId('page'));
  byId('token').value = '';
}

function sessionEnded() {
  showSignIn();
  notice(t('sessionEnded'));
  byId('sign-in-title').focus();
}

function signedIn(session) {
  state.session = session;
  api.csrfToken = session.csrf_token;
  window.clearTimeout(state.expiryTimer);
  const left = session.expires_at_ms - Date.now();
  // setTimeout takes at most ~24.8 days; sessions last hours.
  state.expiryTimer = window.setTimeout(sessionEnded, Math.max(0, Math.min(left, 2 ** 31 - 1)));
  byId('view-sign-in').hidden = true;
  byId('page').hidden = false;
  byId('nav').hidden = false;
  byId('menu').hidden = false;
  byId('who').hidden = false;
  byId('sign-out').hidden = false;
  renderHeader();
  renderNav();
}

async function signIn(event) {
  event.preventDefault();
  await act(async () => {
    const input = byId('token');
    const token = input.value.trim();
    if (!token) {
      input.focus();
      showError(t('error_needs_token'));
      return;
    }
    let session;
    try {
      session = await api.post('/console/api/session', { token });
    } catch (error) {
      input.focus();
      throw error;
    } finally {
      // The token is not kept on the page once sent.
      input.value = '';
    }
    signedIn(session);
    notice(t('signedIn', { time: i18n.date(session.expires_at_ms) }));
    await route();
  });
}

async function signOut() {
  await act(async () => {
    await api.delete('/console/api/session');
    showSignIn();
    notice(t('signedOut'));
    byId('sign-in-title').focus();
  });
}

// ---- shell -----------------------------------------------------------------

function renderHeader() {
  if (!state.session) return;
  byId('who').textContent = t('who', {
    tenant: state.session.tenant,
    role: roleName(state.session.role),
  });
}

function renderNav() {
  const list = byId('nav-list');
  fill(
    list,
    visiblePages()
      .filter((page) => page.nav)
      .map((page) => h('li', {}, h('a', { href: '#/' + page.id, dataset: { page: page.id } }, t(page.nav)))),
  );
  markCurrent();
}

function markCurrent() {
  const { id } = parseHash();
  for (const link of byId('nav-list').querySelectorAll('a')) {
    if (link.dataset.page === id) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function setMenu(open) {
  byId('menu').setAttribute('aria-expanded', String(open));
  byId('nav').classList.toggle('open', open);
}

/** The page id and its decoded parameters of the location's hash. */
function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const parts = raw.split('/').filter((p) => p !== '');
  let decoded;
  try {
    decoded = parts.map((p) => decodeURIComponent(p));
  } catch {
    decoded = parts;
  }
  return { id: decoded[0] || 'home', params: decoded.slice(1) };
}

/** Navigates to `route` ('#/segments/x'); an array is encoded segment by segment. */
function go(where) {
  const target = Array.isArray(where)
    ? '#/' + where.map((p) => encodeURIComponent(p)).join('/')
    : where;
  if (window.location.hash === target) route();
  else window.location.hash = target;
}

function context() {
  return {
    api,
    t,
    i18n,
    session: state.session,
    go,
    notice,
    fail,
    h,
    fill,
  };
}

/** Renders the page of the location's hash, then moves focus to its heading. */
async function route(focus = true) {
  if (!state.session) return;
  const seq = ++state.routeSeq;
  const { id, params } = parseHash();
  const page = visiblePages().find((p) => p.id === id);
  markCurrent();
  setMenu(false);
  clearAlert();
  const holder = byId('page');
  holder.setAttribute('aria-busy', 'true');
  fill(holder, h('p', { class: 'loading' }, t('loading')));
  let node;
  try {
    node = page ? await page.render(context(), params) : notFound();
  } catch (error) {
    if (seq !== state.routeSeq) return;
    node = h('section', { class: 'card' }, h('h2', { tabindex: '-1' }, t(page && page.nav ? page.nav : 'notFoundTitle')));
    fail(error);
  }
  if (seq !== state.routeSeq) return;
  holder.removeAttribute('aria-busy');
  fill(holder, node);
  if (focus) {
    const heading = holder.querySelector('h2, h1');
    if (heading) {
      if (!heading.hasAttribute('tabindex')) heading.setAttribute('tabindex', '-1');
      heading.focus();
    }
  }
}

function notFound() {
  return h(
    'section',
    { class: 'card' },
    h('h2', {}, t('notFoundTitle')),
    h('p', {}, t('notFound')),
  );
}

function home(ctx) {
  const { session } = ctx;
  const links = visiblePages().filter((p) => p.nav && p.id !== 'home');
  return h(
    'section',
    { class: 'card' },
    h('h2', {}, t('homeTitle')),
    h(
      'p',
      {},
      t('homeIntro', {
        tenant: session.tenant,
        role: roleName(session.role),
        time: i18n.date(session.expires_at_ms),
      }),
    ),
    links.length
      ? [
          h('h3', {}, t('homePages')),
          h(
            'ul',
            { class: 'tiles' },
            links.map((p) => h('li', {}, h('a', { href: '#/' + p.id }, t(p.nav)))),
          ),
        ]
      : null,
  );
}

// ---- start -----------------------------------------------------------------

function applyLanguage() {
  // A message shown before the switch would stay in the old language.
  notice('');
  i18n.apply(document);
  byId('lang-select').value = i18n.lang;
  document.documentElement.lang = i18n.lang;
  if (state.session) {
    renderHeader();
    renderNav();
    route(false);
  }
}

function wire() {
  byId('lang-select').addEventListener('change', (event) => i18n.set(event.target.value));
  i18n.onChange(applyLanguage);
  byId('sign-in-form').addEventListener('submit', signIn);
  byId('sign-out').addEventListener('click', signOut);
  byId('menu').addEventListener('click', () => {
    setMenu(byId('menu').getAttribute('aria-expanded') !== 'true');
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && byId('nav').classList.contains('open')) {
      setMenu(false);
      byId('menu').focus();
    }
  });
  window.addEventListener('hashchange', () => route());
}

async function start() {
  wire();
  applyLanguage();
  try {
    signedIn(await api.get('/console/api/session'));
  } catch (error) {
    showSignIn();
    if (!(error instanceof ApiError && error.status === 401)) showError(error);
    return;
  }
  await route(false);
}

start();
