// The subject portal: sign in with a one-time code, then see, correct,
// export and erase one's own data, manage consents, linked apps and
// retention. Every request is same-origin; the session is an HttpOnly
// cookie this script never sees, and requests that change data carry the
// session's CSRF token (docs/portal.md).

import { Api, ApiError } from '/ui/shared/api.js';
import { byId, fill, h } from '/ui/shared/dom.js';
import { I18n } from '/ui/shared/i18n.js';
import { STRINGS, TRAIT_NAMES } from '/ui/portal/strings.js';

const api = new Api();
const i18n = new I18n(STRINGS, 'tessera.portal.lang');
const t = (key, params) => i18n.t(key, params);

const PANELS = ['data', 'consents', 'apps', 'retention', 'export', 'delete'];
const EXPORT_TABLES = [
  'traits', 'events', 'consents', 'linked_apps', 'identities', 'segments', 'decisions',
  'access_log', 'plugin_state',
];
const DELETION_KEY = 'tessera.portal.deletion';
const POLL_MS = 5000;

const state = {
  tenant: new URLSearchParams(window.location.search).get('tenant') || '',
  channel: 'email',
  address: '',
  codeMinutes: 10,
  session: null,
  me: null,
  consents: null,
  apps: null,
  retention: null,
  deletion: null,
  expiryTimer: null,
  pollTimer: null,
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

function describe(error) {
  if (error instanceof ApiError) {
    const key = 'error_' + error.code;
    return i18n.has(key) ? t(key, error.details || {}) : t('error', { message: error.message });
  }
  return t('error', { message: String(error && error.message ? error.message : error) });
}

function showError(error) {
  const alert = byId('alert');
  alert.textContent = describe(error);
  alert.hidden = false;
}

/** Runs an action: errors become a message; an ended session or an erased
 *  person changes the view. */
async function act(work) {
  clearAlert();
  try {
    await work();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && state.session) {
      sessionEnded();
    } else if (error instanceof ApiError && error.code === 'subject_erased') {
      await showErased();
    } else {
      showError(error);
    }
  }
}

// ---- views -----------------------------------------------------------------

function show(view) {
  for (const id of ['view-sign-in', 'view-portal', 'view-erased']) byId(id).hidden = id !== view;
  byId('sign-out').hidden = view === 'view-sign-in';
}

function showSignIn() {
  state.session = null;
  api.csrfToken = null;
  window.clearTimeout(state.expiryTimer);
  window.clearTimeout(state.pollTimer);
  byId('tenant-field').hidden = Boolean(state.tenant);
  byId('tenant').value = state.tenant;
  byId('ask-form').hidden = false;
  byId('code-form').hidden = true;
  show('view-sign-in');
}

function sessionEnded() {
  showSignIn();
  notice(t('sessionEnded'));
}

function signedIn(session) {
  state.session = session;
  api.csrfToken = session.csrf_token;
  window.clearTimeout(state.expiryTimer);
  const left = session.expires_at_ms - Date.now();
  // setTimeout takes at most ~24.8 days; sessions last minutes.
  state.expiryTimer = window.setTimeout(sessionEnded, Math.max(0, Math.min(left, 2 ** 31 - 1)));
}

// ---- sign in ---------------------------------------------------------------

function setChannel(channel) {
  state.channel = channel;
  const input = byId('address');
  const label = byId('address-label');
  if (channel === 'phone') {
    input.type = 'tel';
    input.autocomplete = 'tel';
    label.dataset.i18n = 'phoneNumber';
  } else {
    input.type = 'email';
    input.autocomplete = 'email';
    label.dataset.i18n = 'emailAddress';
  }
  label.textContent = t(label.dataset.i18n);
}

function who() {
  return { tenant: state.tenant, [state.channel]: state.address };
}

function codeSentText() {
  return t('codeSent', { address: state.address, minutes: state.codeMinutes });
}

async function askForCode(event) {
  event.preventDefault();
  await act(async () => {
    if (!byId('tenant-field').hidden) state.tenant = byId('tenant').value.trim();
    if (!state.tenant) {
      byId('tenant').focus();
      throw new Error(t('error_needs_tenant'));
    }
    state.address = byId('address').value.trim();
    const answer = await api.post('/v1/login/code', who());
    state.codeMinutes = Math.round((answer.expires_in_s || 600) / 60);
    byId('code-sent').textContent = codeSentText();
    byId('ask-form').hidden = true;
    byId('code-form').hidden = false;
    byId('code').value = '';
    byId('code').focus();
  });
}

async function signIn(event) {
  event.preventDefault();
  await act(async () => {
    const code = byId('code').value.replace(/\s+/g, '');
    if (!/^[0-9]{6}$/.test(code)) {
      byId('code').focus();
      throw new Error(t('error_needs_code'));
    }
    const session = await api.post('/portal/api/session', { ...who(), code });
    signedIn(session);
    await enter();
    notice(t('signedIn', { time: i18n.date(session.expires_at_ms) }));
  });
}

async function signOut() {
  await act(async () => {
    await api.delete('/portal/api/session');
    showSignIn();
    notice(t('signedOut'));
  });
}

// ---- the portal ------------------------------------------------------------

async function enter() {
  let me;
  try {
    me = await api.get('/portal/api/me');
  } catch (error) {
    if (error instanceof ApiError && error.code === 'subject_erased') return showErased();
    throw error;
  }
  const [consents, apps, retention] = await Promise.all([
    api.get('/v1/me/consents'),
    api.get('/v1/me/apps'),
    api.get('/v1/me/retention'),
  ]);
  Object.assign(state, { me, consents, apps, retention });
  show('view-portal');
  renderPortal();
  route(false);
}

function renderPortal() {
  renderData();
  renderConsents();
  renderApps();
  renderRetention();
  renderExport();
}

function route(focus = true) {
  const wanted = window.location.hash.slice(1);
  const panel = PANELS.includes(wanted) ? wanted : 'data';
  for (const id of PANELS) byId(id).hidden = id !== panel;
  for (const link of document.querySelectorAll('.tabs a')) {
    if (link.getAttribute('href') === '#' + panel) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (focus) byId(panel).focus();
}

function table(columns, rows) {
  if (rows.length === 0) return h('p', { class: 'empty' }, t('nothing'));
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'stack' },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        rows.map((row) => h('tr', {}, row.map((cell, i) => h('td', { 'data-label': columns[i] }, cell)))),
      ),
    ),
  );
}

function traitName(name) {
  return (TRAIT_NAMES[i18n.lang] || {})[name] || (TRAIT_NAMES.en || {})[name] || name;
}

function text(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function channelName(channel) {
  const key = 'channel_' + channel;
  return i18n.has(key) ? t(key) : text(channel);
}

function renderData() {
  const data = state.me.data;
  const editable = new Map(state.me.editable.map((e) => [e.name, e]));
  const names = [...new Set([...Object.keys(data.traits), ...editable.keys()])].sort();
  fill(
    byId('traits'),
    h('ul', { class: 'plain' }, names.map((name) => traitRow(name, data.traits[name], editable.get(name)))),
  );
  fill(
    byId('identities'),
    data.identities.length === 0
      ? h('li', { class: 'empty' }, t('nothing'))
      : data.identities.map(([kind, value]) => h('li', {}, `${traitName(kind)}: ${value}`)),
  );
  const events = [...data.events].sort((a, b) => b.at_ms - a.at_ms);
  const isPurchase = (e) => /purchase|order|checkout/.test(e.type);
  const isBrowsing = (e) => /page|screen|view/.test(e.type);
  fill(
    byId('purchases'),
    table(
      [t('colDate'), t('colAmount'), t('colWhere'), t('colOrder')],
      events.filter(isPurchase).map((e) => [
        i18n.date(e.at_ms),
        e.properties.amount === undefined
          ? '—'
          : `${i18n.number(e.properties.amount)} ${e.properties.currency || ''}`.trim(),
        e.properties.store ? text(e.properties.store) : channelName(e.channel),
        text(e.properties.order_id),
      ]),
    ),
  );
  fill(
    byId('browsing'),
    table(
      [t('colDate'), t('colPage'), t('colChannel')],
      events.filter((e) => !isPurchase(e) && isBrowsing(e)).map((e) => [
        i18n.date(e.at_ms),
        text(e.properties.path || e.properties.name || e.properties.url || e.properties.category || e.type),
        channelName(e.channel),
      ]),
    ),
  );
  fill(
    byId('other-events'),
    table(
      [t('colDate'), t('colWhat'), t('colChannel')],
      events.filter((e) => !isPurchase(e) && !isBrowsing(e)).map((e) => [
        i18n.date(e.at_ms),
        e.type,
        channelName(e.channel),
      ]),
    ),
  );
  fill(
    byId('segments'),
    state.me.segments.length === 0
      ? h('li', { class: 'empty' }, t('noSegments'))
      : state.me.segments.map((s) =>
          h(
            'li',
            {},
            t('segmentSentence', { segment: s.segment, date: i18n.day(s.entered_at_ms) }),
            s.why ? h('span', { class: 'why' }, t('segmentWhy', { why: s.why })) : null,
          ),
        ),
  );
}

function traitRow(name, held, spec) {
  const value = held ? held[0] : null;
  const row = h(
    'li',
    { class: 'trait' },
    h('span', { class: 'name', id: `trait-${name}` }, traitName(name)),
    h('span', { class: 'value' }, text(value)),
  );
  if (!spec) {
    row.appendChild(h('span', { class: 'hint', title: t('notEditable') }, t('keptByUs')));
    return row;
  }
  const editButton = h(
    'button',
    { type: 'button', class: 'secondary', 'aria-expanded': 'false', 'aria-label': t('editLabel', { name: traitName(name) }) },
    t('edit'),
  );
  editButton.addEventListener('click', () => {
    const open = row.querySelector('form');
    if (open) {
      open.remove();
      editButton.setAttribute('aria-expanded', 'false');
      return;
    }
    editButton.setAttribute('aria-expanded', 'true');
    const form = editForm(name, value, spec, held !== undefined, () => {
      form.remove();
      editButton.setAttribute('aria-expanded', 'false');
      editButton.focus();
    });
    row.appendChild(form);
    form.querySelector('input, select').focus();
  });
  row.appendChild(editButton);
  return row;
}

function editInput(id, value, spec) {
  if (spec.allowed && spec.allowed.length > 0) {
    return h(
      'select',
      { id, name: 'value' },
      spec.allowed.map((option) => h('option', { value: JSON.stringify(option), selected: option === value }, text(option))),
    );
  }
  if (spec.type === 'bool') {
    return h(
      'select',
      { id, name: 'value' },
      h('option', { value: 'true', selected: value === true }, t('yes')),
      h('option', { value: 'false', selected: value === false }, t('no')),
    );
  }
  const type = spec.type === 'number' ? 'number' : spec.type === 'date' ? 'date' : 'text';
  const shown = value === null ? '' : spec.type === 'date' ? String(value).slice(0, 10) : String(value);
  return h('input', { id, name: 'value', type, value: shown, required: true, step: type === 'number' ? 'any' : undefined });
}

function readInput(input, spec) {
  if (spec.allowed && spec.allowed.length > 0) return JSON.parse(input.value);
  if (spec.type === 'bool') return input.value === 'true';
  if (spec.type === 'number') return input.value === '' ? NaN : Number(input.value);
  return input.value.trim();
}

function editForm(name, value, spec, held, close) {
  const id = `edit-${name}`;
  const input = editInput(id, value, spec);
  const save = async (newValue, message) =>
    act(async () => {
      await api.patch('/v1/me/traits', { traits: { [name]: newValue } });
      state.me = await api.get('/portal/api/me');
      renderData();
      notice(message);
      const row = byId(`trait-${name}`).parentElement;
      const button = row && row.querySelector('button');
      if (button) button.focus();
    });
  const form = h(
    'form',
    { novalidate: true },
    h('div', { class: 'field' }, h('label', { for: id }, t('editTrait', { name: traitName(name) })), input),
    h('button', { type: 'submit' }, t('save')),
    h('button', { type: 'button', class: 'secondary', onclick: close }, t('cancel')),
    held
      ? h('button', { type: 'button', class: 'secondary', onclick: () => save(null, t('removed')) }, t('remove'))
      : null,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    save(readInput(input, spec), t('saved'));
  });
  form.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') close();
  });
  return form;
}

function purposeName(purpose) {
  const key = 'purpose_' + purpose;
  return i18n.has(key) ? t(key) : purpose;
}

function actorName(actor) {
  const key = 'by_' + (actor && actor.role);
  return i18n.has(key) ? t(key) : text(actor && actor.role);
}

function renderConsents() {
  fill(
    byId('consent-list'),
    state.consents.consents.map((consent) => {
      const id = `consent-${consent.purpose}`;
      const box = h('input', {
        type: 'checkbox',
        role: 'switch',
        id,
        checked: consent.granted,
        'aria-describedby': `${id}-since`,
      });
      box.addEventListener('change', () => setConsent(consent.purpose, box));
      return h(
        'li',
        {},
        h(
          'label',
          { for: id },
          h('span', { class: 'purpose' }, purposeName(consent.purpose)),
          h(
            'span',
            { class: 'since', id: `${id}-since` },
            `${consent.granted ? t('granted') : t('revoked')} · ${
              consent.at_ms === null ? t('consentNever') : t('consentSince', { date: i18n.date(consent.at_ms) })
            }`,
          ),
        ),
        box,
      );
    }),
  );
  const history = [...state.consents.history].reverse();
  fill(
    byId('consent-history'),
    table(
      [t('colDate'), t('colPurpose'), t('colChange'), t('colHow'), t('colBy')],
      history.map((e) => [
        i18n.date(e.at_ms),
        purposeName(e.purpose),
        e.granted ? t('granted') : t('revoked'),
        text(e.method),
        actorName(e.actor),
      ]),
    ),
  );
}

async function setConsent(purpose, box) {
  const granted = box.checked;
  box.disabled = true;
  await act(async () => {
    try {
      await api.put(`/v1/me/consents/${encodeURIComponent(purpose)}`, { granted });
    } catch (error) {
      box.checked = !granted;
      throw error;
    } finally {
      box.disabled = false;
    }
    state.consents = await api.get('/v1/me/consents');
    renderConsents();
    const again = byId(`consent-${purpose}`);
    again.focus();
    notice(t(granted ? 'consentGranted' : 'consentRevoked', { purpose: purposeName(purpose) }));
  });
}

function renderApps() {
  const apps = state.apps.apps;
  fill(
    byId('app-list'),
    apps.length === 0
      ? h('li', { class: 'empty' }, t('noApps'))
      : apps.map((app) =>
          h(
            'li',
            { class: 'trait' },
            h(
              'span',
              { class: 'value' },
              t('appLine', { name: app.name, scopes: app.scopes.join(', '), date: i18n.day(app.granted_at_ms) }),
            ),
            h(
              'button',
              {
                type: 'button',
                class: 'secondary',
                'aria-label': t('revokeLabel', { name: app.name }),
                onclick: () => revokeApp(app),
              },
              t('revoke'),
            ),
          ),
        ),
  );
}

async function revokeApp(app) {
  await act(async () => {
    await api.delete(`/v1/me/apps/${encodeURIComponent(app.app)}`);
    state.apps = await api.get('/v1/me/apps');
    renderApps();
    notice(t('appRevoked', { name: app.name }));
    byId('apps').focus();
  });
}

function renderRetention() {
  const r = state.retention;
  byId('retention-now').textContent = t('retentionNow', {
    days: i18n.number(r.days),
    how: r.chosen === null ? t('retentionDefault') : t('retentionChosen'),
  });
  const input = byId('retention-days');
  input.min = String(r.min_days);
  input.max = String(r.max_days);
  input.value = String(r.days);
  byId('retention-bounds').textContent = t('retentionBounds', { min: r.min_days, max: r.max_days });
}

async function saveRetention(event) {
  event.preventDefault();
  await act(async () => {
    const days = Number(byId('retention-days').value);
    state.retention = await api.put('/v1/me/retention', { days });
    renderRetention();
    notice(t('retentionSaved', { days: i18n.number(state.retention.days) }));
  });
}

function renderExport() {
  fill(
    byId('export-csv'),
    EXPORT_TABLES.map((table) =>
      h('li', {}, h('a', { href: `/v1/me/export?format=csv&table=${table}`, download: true }, t('table_' + table))),
    ),
  );
}

// ---- deletion --------------------------------------------------------------

function storedDeletion() {
  try {
    const stored = JSON.parse(window.localStorage.getItem(DELETION_KEY) || 'null');
    return stored && stored.tenant === (state.session && state.session.tenant) ? stored.id : null;
  } catch {
    return null;
  }
}

function storeDeletion(id) {
  try {
    window.localStorage.setItem(DELETION_KEY, JSON.stringify({ tenant: state.session.tenant, id }));
  } catch {
    // Without storage the page shows the request while it stays open.
  }
}

async function requestDeletion(event) {
  event.preventDefault();
  const confirmBox = byId('delete-confirm');
  if (!confirmBox.checked) {
    showError(new Error(t('deleteNeedsConfirm')));
    confirmBox.focus();
    return;
  }
  await act(async () => {
    const request = await api.post('/v1/me/deletion');
    storeDeletion(request.id);
    state.deletion = request;
    notice(t('deleteRequested'));
    await showErased();
  });
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}

function renderDeletion() {
  const target = byId('erased-status');
  const request = state.deletion;
  // The heading says what is true now: being deleted until the receipt
  // exists, deleted after (and kept so when the language changes).
  const title = byId('erased-title');
  title.dataset.i18n = !request || request.status === 'completed' ? 'erasedDoneTitle' : 'erasedTitle';
  title.textContent = t(title.dataset.i18n);
  if (!request) {
    fill(target, h('p', {}, t('erasedNoRequest')));
    return;
  }
  const parts = [
    facts([
      [t('requestId'), request.id],
      [t('status'), t('status_' + request.status)],
      [t('requestedAt'), i18n.date(request.requested_at_ms)],
      [t('deadline'), i18n.date(request.deadline_ms)],
    ]),
    h('p', {}, t('keepId')),
  ];
  const receipt = request.receipt;
  if (receipt) {
    const removed = receipt.removed;
    parts.push(
      h('h3', {}, t('receipt')),
      h('p', {}, t('receiptIntro')),
      h(
        'div',
        { class: 'receipt', id: 'receipt' },
        facts([
          [t('completedAt'), i18n.date(receipt.completed_at_ms)],
          [t('metDeadline'), receipt.met_deadline ? t('yes') : t('no')],
          [t('removedCounts'), t('removedLine', removed)],
          [t('digest'), receipt.digest],
          [t('signature'), receipt.mac],
        ]),
      ),
    );
  } else {
    parts.push(h('p', {}, t('waitingReceipt', { deadline: i18n.date(request.deadline_ms) })));
  }
  fill(target, parts);
}

async function showErased() {
  show('view-erased');
  window.clearTimeout(state.pollTimer);
  const id = (state.deletion && state.deletion.id) || storedDeletion();
  if (id) {
    try {
      state.deletion = await api.get(`/v1/me/deletions/${encodeURIComponent(id)}`);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
      state.deletion = null;
    }
  }
  renderDeletion();
  byId('erased-title').focus();
  if (state.deletion && state.deletion.status !== 'completed') {
    state.pollTimer = window.setTimeout(() => act(showErased), POLL_MS);
  }
}

// ---- start -----------------------------------------------------------------

function applyLanguage() {
  // A message shown before the switch would stay in the old language.
  notice('');
  i18n.apply(document);
  byId('lang-select').value = i18n.lang;
  document.documentElement.lang = i18n.lang;
  if (!byId('code-form').hidden) byId('code-sent').textContent = codeSentText();
  if (!byId('view-portal').hidden && state.me) renderPortal();
  if (!byId('view-erased').hidden) renderDeletion();
}

function wire() {
  byId('lang-select').addEventListener('change', (event) => i18n.set(event.target.value));
  i18n.onChange(applyLanguage);
  for (const radio of document.querySelectorAll('input[name=channel]')) {
    radio.addEventListener('change', () => setChannel(radio.value));
  }
  byId('ask-form').addEventListener('submit', askForCode);
  byId('code-form').addEventListener('submit', signIn);
  byId('other-address').addEventListener('click', () => {
    byId('code-form').hidden = true;
    byId('ask-form').hidden = false;
    byId('address').focus();
  });
  byId('sign-out').addEventListener('click', signOut);
  byId('retention-form').addEventListener('submit', saveRetention);
  byId('delete-form').addEventListener('submit', requestDeletion);
  byId('erased-title').setAttribute('tabindex', '-1');
  window.addEventListener('hashchange', () => {
    if (!byId('view-portal').hidden) route();
  });
}

async function start() {
  wire();
  applyLanguage();
  try {
    signedIn(await api.get('/portal/api/session'));
  } catch (error) {
    showSignIn();
    if (!(error instanceof ApiError && error.status === 401)) showError(error);
    return;
  }
  await act(enter);
}

start();
