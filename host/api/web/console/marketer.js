// The console's marketer pages: imports with their quality reports and
// dead letters, profiles, the segment builder (a rule checked as it is
// typed, its errors shown where they are, a live preview count), segment
// sizes over time, the strategy catalog, the campaign wizard (define →
// simulate → enable with a control group) and campaign results with the
// uplift and its confidence interval. Everything goes through the /v1 API
// the session's role may call (docs/console.md, Marketer pages); the
// shell (app.js) routes, signs in and shows notices and errors.

import { fill, h } from '/ui/shared/dom.js';
import { intervalChart, lineChart } from '/ui/console/charts.js';

const STAFF = ['operator', 'marketer'];
const READERS = ['marketer', 'analyst'];
const NAME = /^[a-z0-9_-]{1,64}$/;
const CHECK_DELAY_MS = 300;
const RECOMPUTE_POLL_MS = 1000;

// ---- small helpers -----------------------------------------------------------

/** The stylesheet of these pages, added once (a file of this origin: the CSP allows it). */
function ensureStyles() {
  if (document.querySelector('link[data-mk-styles]')) return;
  document.head.appendChild(h('link', { rel: 'stylesheet', href: '/ui/console/marketer.css', 'data-mk-styles': '' }));
}

const lang = () => document.documentElement.lang || 'en';
const enc = encodeURIComponent;

function num(value, options) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return '—';
  return new Intl.NumberFormat(lang(), options).format(Number(value));
}
const int = (value) => num(value, { maximumFractionDigits: 0 });
const pct = (value, digits = 1) => num(value, { style: 'percent', maximumFractionDigits: digits });
const dec = (value, digits = 3) => num(value, { maximumFractionDigits: digits });

function when(ms) {
  if (ms === null || ms === undefined) return '—';
  return new Intl.DateTimeFormat(lang(), { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(ms));
}

function day(ms) {
  return new Intl.DateTimeFormat(lang(), { month: 'short', day: 'numeric' }).format(new Date(ms));
}

function text(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Opens `route` ('segments/<name>', its parts already encoded). */
const go = (ctx, route) => ctx.go('#/' + route);

const canChange = (ctx) => STAFF.includes(ctx.session && ctx.session.role);

function page(...children) {
  ensureStyles();
  return h('div', { class: 'mk-page' }, ...children);
}

function card(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...children);
}

function sub(title, ...children) {
  return h('section', {}, h('h3', {}, title), ...children);
}

function facts(pairs) {
  return h(
    'dl',
    { class: 'mk-facts' },
    pairs.filter(Boolean).map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]),
  );
}

function table(ctx, columns, rows, emptyKey = 'mkNothing') {
  if (rows.length === 0) return h('p', { class: 'empty' }, ctx.t(emptyKey));
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'stack' },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((row) => h('tr', {}, row.map((cell, i) => h('td', { 'data-label': columns[i] }, cell))))),
    ),
  );
}

function badge(ctx, status) {
  const key = 'mkStatus_' + status;
  return h('span', { class: `mk-badge mk-${status}` }, ctx.t(key) === key ? status : ctx.t(key));
}

function link(ctx, route, label) {
  return h('a', { href: '#/' + route }, label);
}

function button(label, onclick, attributes = {}) {
  return h('button', { type: 'button', ...attributes, onclick }, label);
}

/** A box that shows "Loading…" until `work()` gives its content; an error
 *  goes to the shell and leaves a short sentence in place. */
function deferred(ctx, work) {
  const box = h('div', { 'aria-busy': 'true' }, h('p', { class: 'mk-loading' }, ctx.t('mkLoading')));
  Promise.resolve()
    .then(work)
    .then(
      (content) => {
        box.removeAttribute('aria-busy');
        fill(box, content);
      },
      (error) => {
        box.removeAttribute('aria-busy');
        fill(box, h('p', { class: 'mk-muted' }, ctx.t('mkCouldNotLoad')));
        ctx.fail(error);
      },
    );
  return box;
}

/** Runs `work` with `control` disabled meanwhile; errors go to the shell. */
async function busy(ctx, control, work) {
  if (control) control.disabled = true;
  try {
    return await work();
  } catch (error) {
    ctx.fail(error);
    return undefined;
  } finally {
    if (control) control.disabled = false;
  }
}

function field(id, label, input, hint) {
  const hintId = hint ? id + '-hint' : undefined;
  if (hintId) input.setAttribute('aria-describedby', hintId);
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
  );
}

function select(id, options, selected) {
  return h(
    'select',
    { id, name: id },
    options.map(([value, label]) => h('option', { value, selected: value === selected }, label)),
  );
}

// ---- imports ----------------------------------------------------------------

async function importsPage(ctx, params) {
  if (params.length > 0) return importPage(ctx, params[0]);
  const statusSelect = select(
    'mk-import-status',
    [['', ctx.t('mkAny')], ...['running', 'completed', 'failed'].map((s) => [s, ctx.t('mkStatus_' + s)])],
    '',
  );
  const list = h('div', {});
  const load = async () => {
    const status = statusSelect.value;
    const answer = await ctx.api.get('/v1/imports?limit=100' + (status ? '&status=' + enc(status) : ''));
    fill(
      list,
      table(
        ctx,
        [ctx.t('mkImport'), ctx.t('mkStatus'), ctx.t('mkStarted'), ctx.t('mkRowsRead'), ctx.t('mkAccepted'), ctx.t('mkRejected'), ctx.t('mkDeadLetters')],
        answer.imports.map((i) => [
          h('span', {}, link(ctx, 'imports/' + enc(i.id), i.source || i.id), h('br', {}), h('span', { class: 'mk-muted mk-mono' }, i.id)),
          badge(ctx, i.status),
          when(i.started_at_ms),
          int(i.report.rows_read),
          int(i.report.accepted),
          int(i.report.rows_rejected + i.report.records_refused),
          int(i.report.dead_letters),
        ]),
        'mkNoImports',
      ),
    );
  };
  statusSelect.addEventListener('change', () => busy(ctx, statusSelect, load));
  await load();
  return page(
    card(
      ctx.t('mkImportsTitle'),
      h('p', { class: 'hint' }, ctx.t('mkImportsIntro')),
      h('div', { class: 'mk-inline-form' }, field('mk-import-status', ctx.t('mkFilterStatus'), statusSelect)),
      list,
    ),
  );
}

async function importPage(ctx, id) {
  const record = await ctx.api.get('/v1/imports/' + enc(id));
  const r = record.report;
  const rejected = Object.entries(r.rejected || {}).sort((a, b) => b[1] - a[1]);
  const letters = h('div', {});
  const fixer = h('div', {});
  const loadLetters = async (after, append) => {
    const answer = await ctx.api.get(
      `/v1/imports/${enc(id)}/dead-letters?limit=100` + (after ? '&after=' + enc(after) : ''),
    );
    const rows = answer.letters.map((l) => [
      l.row === null || l.row === undefined ? '—' : int(l.row),
      text(l.field),
      h('code', {}, l.code),
      l.reason,
      badge(ctx, l.state),
      h(
        'div',
        { class: 'row' },
        l.state !== 'replayed'
          ? button(ctx.t('mkReplay'), (event) => replay([l.id], event.currentTarget), {
              class: 'secondary',
              'aria-label': ctx.t('mkReplayLetter', { id: l.id }),
            })
          : null,
        ctx.session.role === 'operator' && l.has_content && l.state !== 'replayed'
          ? button(ctx.t('mkFix'), () => openFix(l), { class: 'secondary', 'aria-label': ctx.t('mkFixLetter', { id: l.id }) })
          : null,
      ),
    ]);
    const shown = table(
      ctx,
      [ctx.t('mkRow'), ctx.t('mkField'), ctx.t('mkRule'), ctx.t('mkReason'), ctx.t('mkState'), ctx.t('mkActions')],
      rows,
      'mkNoDeadLetters',
    );
    if (!append) fill(letters);
    letters.appendChild(shown);
    if (answer.next) {
      const more = button(ctx.t('mkMore'), () => busy(ctx, more, async () => { more.remove(); await loadLetters(answer.next, true); }), { class: 'secondary' });
      letters.appendChild(more);
    }
  };
  const replay = (ids, control) =>
    busy(ctx, control, async () => {
      const done = await ctx.api.post(`/v1/imports/${enc(id)}/replay`, ids ? { letters: ids } : {});
      ctx.notice(ctx.t('mkReplayed', { replayed: done.replayed, failed: done.failed, events: done.events_inserted }));
      await loadLetters(null, false);
    });
  const openFix = (letter) =>
    busy(ctx, null, async () => {
      const full = await ctx.api.get(`/v1/imports/${enc(id)}/dead-letters/${enc(letter.id)}`);
      const editable = full.raw !== undefined ? full.raw : full.item !== undefined ? JSON.stringify(full.item, null, 2) : null;
      if (editable === null) {
        fill(fixer, h('p', { class: 'mk-warning' }, ctx.t('mkFixBinary')));
        return;
      }
      const area = h('textarea', { id: 'mk-fix-text', class: 'mk-text mk-mono', spellcheck: 'false' });
      area.value = editable;
      const form = h(
        'form',
        { novalidate: true },
        h('h3', {}, ctx.t('mkFixTitle', { row: letter.row === null ? '—' : letter.row })),
        full.header ? h('p', { class: 'hint mk-mono' }, ctx.t('mkHeader', { header: full.header.trim() })) : null,
        h('p', { class: 'hint' }, letter.reason),
        field('mk-fix-text', full.raw !== undefined ? ctx.t('mkRawRow') : ctx.t('mkRecord'), area),
        h(
          'div',
          { class: 'row' },
          h('button', { type: 'submit' }, ctx.t('mkSaveFix')),
          button(ctx.t('mkCancel'), () => fill(fixer), { class: 'secondary' }),
        ),
      );
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        busy(ctx, form.querySelector('button[type=submit]'), async () => {
          let body;
          if (full.raw !== undefined) body = { raw: area.value };
          else {
            try {
              body = { item: JSON.parse(area.value) };
            } catch (error) {
              throw new Error(ctx.t('mkNotJson', { message: error.message }));
            }
          }
          await ctx.api.put(`/v1/imports/${enc(id)}/dead-letters/${enc(letter.id)}`, body);
          ctx.notice(ctx.t('mkFixed'));
          fill(fixer);
          await loadLetters(null, false);
        });
      });
      fill(fixer, form);
      area.focus();
    });
  await loadLetters(null, false);
  const replayAll = button(ctx.t('mkReplayAll'), (event) => replay(null, event.currentTarget));
  return page(
    card(
      ctx.t('mkImportTitle', { source: record.source || record.id }),
      facts([
        [ctx.t('mkId'), h('span', { class: 'mk-mono' }, record.id)],
        [ctx.t('mkStatus'), badge(ctx, record.status)],
        [ctx.t('mkConnector'), `${record.connector} ${record.connector_version}`],
        [ctx.t('mkStarted'), when(record.started_at_ms)],
        [ctx.t('mkFinished'), when(record.finished_at_ms)],
        [ctx.t('mkStartedBy'), record.started_by],
        record.error ? [ctx.t('mkError'), record.error] : null,
      ]),
      sub(
        ctx.t('mkQuality'),
        h(
          'div',
          { class: 'mk-grid2' },
          facts([
            [ctx.t('mkRowsRead'), int(r.rows_read)],
            [ctx.t('mkAccepted'), int(r.accepted)],
            [ctx.t('mkRowsRejected'), int(r.rows_rejected)],
            [ctx.t('mkRecordsRefused'), int(r.records_refused)],
            [ctx.t('mkDeadLetters'), int(r.dead_letters)],
          ]),
          facts([
            [ctx.t('mkEventsInserted'), int(r.events_inserted)],
            [ctx.t('mkDuplicates'), int(r.duplicates)],
            [ctx.t('mkExpired'), int(r.expired)],
            [ctx.t('mkSubjectsNew'), int(r.subjects_new)],
            [ctx.t('mkSubjectsMatched'), int(r.subjects_matched)],
            [ctx.t('mkMerges'), int(r.identities_merged)],
          ]),
        ),
        h('h4', {}, ctx.t('mkRejectedByReason')),
        table(ctx, [ctx.t('mkReason'), ctx.t('mkCount')], rejected.map(([code, count]) => [h('code', {}, code), int(count)]), 'mkNoneRejected'),
      ),
      sub(
        ctx.t('mkDeadLetters'),
        h('p', { class: 'hint' }, ctx.session.role === 'operator' ? ctx.t('mkLettersIntroOperator') : ctx.t('mkLettersIntro')),
        canChange(ctx) && r.dead_letters > 0 ? h('div', { class: 'mk-actions' }, replayAll) : null,
        letters,
        fixer,
      ),
      h('p', {}, link(ctx, 'imports', ctx.t('mkBackToImports'))),
    ),
  );
}

// ---- profiles ---------------------------------------------------------------

async function profilesPage(ctx, params) {
  if (params.length > 0) return profilePage(ctx, params[0]);
  const idInput = h('input', { id: 'mk-subject', name: 'subject', autocomplete: 'off', spellcheck: 'false', required: true });
  const byId = h(
    'form',
    { class: 'mk-inline-form', novalidate: true },
    field('mk-subject', ctx.t('mkSubjectId'), idInput),
    h('button', { type: 'submit' }, ctx.t('mkOpenProfile')),
  );
  byId.addEventListener('submit', (event) => {
    event.preventDefault();
    const id = idInput.value.trim();
    if (!id) {
      idInput.focus();
      ctx.fail(new Error(ctx.t('mkNeedsSubject')));
      return;
    }
    go(ctx, 'profiles/' + enc(id));
  });
  let byIdentity = null;
  if (ctx.session.role === 'operator') {
    const kind = select(
      'mk-kind',
      ['email', 'phone', 'member_id', 'device_id'].map((k) => [k, ctx.t('mkKind_' + k)]),
      'email',
    );
    const value = h('input', { id: 'mk-identity', name: 'identity', autocomplete: 'off', required: true });
    byIdentity = h(
      'form',
      { class: 'mk-inline-form', novalidate: true },
      field('mk-kind', ctx.t('mkIdentityKind'), kind),
      field('mk-identity', ctx.t('mkIdentityValue'), value),
      h('button', { type: 'submit' }, ctx.t('mkLookUp')),
    );
    byIdentity.addEventListener('submit', (event) => {
      event.preventDefault();
      busy(ctx, byIdentity.querySelector('button'), async () => {
        const found = await ctx.api.post('/v1/subjects/lookup', { kind: kind.value, value: value.value });
        go(ctx, 'profiles/' + enc(found.subject));
      });
    });
  }
  return page(
    card(
      ctx.t('mkProfilesTitle'),
      h('p', { class: 'hint' }, ctx.t('mkProfilesIntro')),
      byId,
      byIdentity ? sub(ctx.t('mkByIdentity'), h('p', { class: 'hint' }, ctx.t('mkLookupAudited')), byIdentity) : h('p', { class: 'hint' }, ctx.t('mkLookupIsOperators')),
    ),
  );
}

async function profilePage(ctx, subject) {
  const p = await ctx.api.get('/v1/profiles/' + enc(subject));
  const traits = Object.entries(p.traits).sort(([a], [b]) => a.localeCompare(b));
  const withheld = Object.entries(p.withheld || {}).sort(([a], [b]) => a.localeCompare(b));
  const aggregates = Object.entries(p.aggregates || {}).sort(([a], [b]) => a.localeCompare(b));
  return page(
    card(
      ctx.t('mkProfileTitle'),
      facts([
        [ctx.t('mkSubjectId'), h('span', { class: 'mk-mono' }, p.subject)],
        [ctx.t('mkCreated'), when(p.created_at_ms)],
      ]),
      sub(ctx.t('mkTraits'), table(ctx, [ctx.t('mkTrait'), ctx.t('mkValue')], traits.map(([name, value]) => [name, text(value)]), 'mkNoTraits')),
      withheld.length > 0
        ? h('p', { class: 'hint' }, ctx.t('mkWithheld', { names: withheld.map(([name, cls]) => `${name} (${cls})`).join(', ') }))
        : null,
      sub(
        ctx.t('mkActivity'),
        table(
          ctx,
          [ctx.t('mkEvent'), ctx.t('mkCount'), ctx.t('mkFirst'), ctx.t('mkLast'), ctx.t('mkSums')],
          aggregates.map(([event, a]) => [
            event,
            int(a.count),
            when(a.first_ms),
            when(a.last_ms),
            Object.entries(a.sums || {}).map(([k, v]) => `${k}: ${dec(v, 2)}`).join(', ') || '—',
          ]),
          'mkNoEvents',
        ),
      ),
      sub(
        ctx.t('mkSegmentsIn'),
        p.segments.length === 0
          ? h('p', { class: 'empty' }, ctx.t('mkInNoSegment'))
          : h(
              'ul',
              { class: 'plain' },
              p.segments.map((s) =>
                h(
                  'li',
                  {},
                  link(ctx, 'segments/' + enc(s.segment), s.segment),
                  ' · ',
                  ctx.t('mkSince', { date: when(s.entered_at_ms) }),
                  s.why ? h('div', { class: 'mk-muted' }, ctx.t('mkWhy', { why: s.why })) : null,
                ),
              ),
            ),
      ),
      sub(
        ctx.t('mkConsents'),
        table(
          ctx,
          [ctx.t('mkPurpose'), ctx.t('mkConsent'), ctx.t('mkSinceCol')],
          p.consents.map((c) => [c.purpose, c.granted ? ctx.t('mkGranted') : ctx.t('mkNotGranted'), when(c.at_ms)]),
        ),
      ),
    ),
  );
}

// ---- segments ---------------------------------------------------------------

function segmentRule(segment) {
  return segment.params && typeof segment.params.rule === 'string' ? segment.params.rule : null;
}

async function segmentsPage(ctx, params) {
  if (params.length > 0) return segmentPage(ctx, params[0]);
  const answer = await ctx.api.get('/v1/segments');
  const segments = [...answer.segments].sort((a, b) => a.name.localeCompare(b.name));
  return page(
    card(
      ctx.t('mkSegmentsTitle'),
      canChange(ctx) ? h('div', { class: 'mk-actions' }, button(ctx.t('mkNewSegment'), () => go(ctx, 'segment-builder'))) : null,
      table(
        ctx,
        [ctx.t('mkName'), ctx.t('mkDescription'), ctx.t('mkMembers'), ctx.t('mkPurpose'), ctx.t('mkComputed')],
        segments.map((s) => [
          link(ctx, 'segments/' + enc(s.name), s.name),
          s.description || segmentRule(s) || s.plugin,
          h('strong', { 'data-members': s.members }, int(s.members)),
          s.purpose,
          s.last_recompute ? when(s.last_recompute.finished_at_ms) : ctx.t('mkComputing'),
        ]),
        'mkNoSegments',
      ),
    ),
  );
}

async function segmentPage(ctx, name) {
  const segment = await ctx.api.get('/v1/segments/' + enc(name));
  const rule = segmentRule(segment);
  const members = h('p', { class: 'mk-big', id: 'mk-segment-members', 'data-members': segment.members }, int(segment.members));
  const computed = h('p', { class: 'hint', id: 'mk-segment-computed' });
  const show = (s) => {
    members.textContent = int(s.members);
    members.dataset.members = String(s.members);
    computed.textContent = s.last_recompute
      ? ctx.t('mkRecomputed', { date: when(s.last_recompute.finished_at_ms), evaluated: int(s.last_recompute.evaluated), entered: int(s.last_recompute.entered), left: int(s.last_recompute.left) })
      : ctx.t('mkComputingMembers');
  };
  show(segment);
  const sizes = h('div', {}, deferred(ctx, () => sizesChart(ctx, name)));
  // A segment just saved is computed in the background: follow it while
  // this page is shown, until its first recompute is done (which also
  // adds the first point of its sizes).
  const follow = async () => {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, RECOMPUTE_POLL_MS));
      if (!members.isConnected) return;
      const again = await ctx.api.get('/v1/segments/' + enc(name));
      show(again);
      if (again.last_recompute) {
        fill(sizes, deferred(ctx, () => sizesChart(ctx, name)));
        return;
      }
    }
  };
  if (!segment.last_recompute) follow().catch(ctx.fail);

  const actions = [];
  if (canChange(ctx)) {
    if (rule !== null) actions.push(button(ctx.t('mkEditRule'), () => go(ctx, 'segment-builder/' + enc(name)), { class: 'secondary' }));
    actions.push(
      button(ctx.t('mkRecompute'), (event) =>
        busy(ctx, event.currentTarget, async () => {
          await ctx.api.post(`/v1/segments/${enc(name)}/recompute`);
          ctx.notice(ctx.t('mkRecomputeStarted', { name }));
        }), { class: 'secondary' }),
      button(ctx.t('mkCampaignOnSegment'), () => go(ctx, 'campaign-wizard/segment/' + enc(name))),
    );
  }
  return page(
    card(
      ctx.t('mkSegmentTitle', { name }),
      h('div', { class: 'mk-grid2' }, h('div', {}, h('p', { class: 'mk-muted' }, ctx.t('mkMembersNow')), members, computed), facts([
        [ctx.t('mkDescription'), segment.description || '—'],
        [ctx.t('mkPlugin'), segment.plugin],
        [ctx.t('mkPurpose'), segment.purpose],
        [ctx.t('mkUpdated'), ctx.t('mkUpdatedBy', { date: when(segment.updated_at_ms), by: segment.updated_by })],
      ])),
      rule !== null
        ? sub(ctx.t('mkRule'), h('pre', { class: 'mk-mono mk-rule-shown' }, rule))
        : sub(ctx.t('mkParameters'), h('pre', { class: 'mk-mono' }, JSON.stringify(segment.params, null, 2))),
      actions.length ? h('div', { class: 'mk-actions' }, actions) : null,
    ),
    card(ctx.t('mkSizesTitle'), sizes),
    card(ctx.t('mkRecommendationsTitle'), deferred(ctx, () => recommendations(ctx, name))),
    canChange(ctx) ? card(ctx.t('mkSomeMembers'), deferred(ctx, () => someMembers(ctx, name))) : null,
  );
}

async function sizesChart(ctx, name) {
  const answer = await ctx.api.get(`/v1/segments/${enc(name)}/sizes`);
  const points = answer.sizes.map((s) => ({ x: s.at_ms, y: s.members, entered: s.entered, left: s.left })).sort((a, b) => a.x - b.x);
  if (points.length === 0) return h('p', { class: 'empty' }, ctx.t('mkNoSizes'));
  const last = points[points.length - 1];
  const first = points[0];
  return lineChart(points, {
    title: ctx.t('mkSizesCaption', { name }),
    summary: ctx.t('mkSizesSummary', {
      name,
      count: points.length,
      first: int(first.y),
      firstDate: when(first.x),
      last: int(last.y),
      lastDate: when(last.x),
      max: int(Math.max(...points.map((p) => p.y))),
    }),
    xLabel: ctx.t('mkWhen'),
    yLabel: ctx.t('mkMembers'),
    formatX: when,
    formatXTick: (ms) => (last.x - first.x > 2 * 86_400_000 ? day(ms) : new Intl.DateTimeFormat(lang(), { hour: '2-digit', minute: '2-digit' }).format(new Date(ms))),
    formatY: int,
  });
}

async function recommendations(ctx, name) {
  const answer = await ctx.api.get(`/v1/segments/${enc(name)}/recommendations`);
  if (answer.recommendations.length === 0) return h('p', { class: 'empty' }, ctx.t('mkNoRecommendations'));
  return h(
    'ol',
    { class: 'mk-recommendations' },
    answer.recommendations.map((r) =>
      h(
        'li',
        {},
        h('strong', {}, r.strategy),
        ' · ',
        ctx.t('mkBasis_' + r.basis) === 'mkBasis_' + r.basis ? r.basis : ctx.t('mkBasis_' + r.basis),
        r.basis !== 'none' ? ' · ' + ctx.t('mkScore', { score: dec(r.score, 4) }) : null,
        h('ul', {}, r.reasons.map((reason) => h('li', { class: 'mk-muted' }, reason))),
        canChange(ctx)
          ? button(ctx.t('mkUseStrategy', { strategy: r.strategy }), () => go(ctx, `campaign-wizard/segment/${enc(name)}/strategy/${enc(r.strategy)}`), { class: 'secondary' })
          : null,
      ),
    ),
  );
}

async function someMembers(ctx, name) {
  const answer = await ctx.api.get(`/v1/segments/${enc(name)}/members?limit=20`);
  if (answer.members.length === 0) return h('p', { class: 'empty' }, ctx.t('mkNoMembers'));
  return h(
    'ul',
    { class: 'mk-sample' },
    answer.members.map((m) => h('li', {}, link(ctx, 'profiles/' + enc(m.subject), m.subject.slice(0, 12) + '…'))),
  );
}

// ---- the segment builder ----------------------------------------------------

/** Byte offset `byte` of `text` in UTF-8 → index in the JavaScript string. */
export function charIndex(textValue, byte) {
  const bytes = new TextEncoder().encode(textValue);
  return new TextDecoder().decode(bytes.slice(0, Math.max(0, Math.min(byte, bytes.length)))).length;
}

/** A rule problem as it is shown: where, what, and the line with the
 *  offending text marked and a caret under it. */
export function locate(rule, problem) {
  const start = charIndex(rule, problem.start);
  const end = Math.max(start, charIndex(rule, problem.end));
  const lineStart = rule.lastIndexOf('\n', start - 1) + 1;
  let lineEnd = rule.indexOf('\n', start);
  if (lineEnd < 0) lineEnd = rule.length;
  const stop = Math.min(end, lineEnd);
  return {
    line: problem.line,
    column: problem.column,
    start,
    end,
    before: rule.slice(lineStart, start),
    marked: rule.slice(start, stop),
    after: rule.slice(stop, lineEnd),
    message: problem.message.replace(/^\d+:\d+:\s*/, ''),
  };
}

function problemView(ctx, rule, problem, textarea) {
  const at = locate(rule, problem);
  const caret = ' '.repeat([...at.before].length) + '^'.repeat(Math.max(1, [...at.marked].length));
  return h(
    'div',
    { class: 'mk-problem', 'data-line': at.line, 'data-column': at.column },
    h(
      'p',
      {},
      h('span', { class: 'mk-where' }, ctx.t('mkAtPosition', { line: at.line, column: at.column })),
      ' ',
      h('span', { class: 'mk-message' }, at.message),
    ),
    h(
      'pre',
      { class: 'mk-mono', 'aria-hidden': 'true' },
      h('code', {}, at.before, h('mark', {}, at.marked || ' '), at.after, '\n', h('span', { class: 'mk-caret' }, caret)),
    ),
    button(
      ctx.t('mkShowInRule'),
      () => {
        textarea.focus();
        textarea.setSelectionRange(at.start, Math.max(at.end, at.start + 1));
      },
      { class: 'secondary' },
    ),
  );
}

async function builderPage(ctx, params) {
  const editing = params.length > 0 ? params[0] : null;
  let existing = null;
  if (editing) existing = await ctx.api.get('/v1/segments/' + enc(editing));
  if (existing && segmentRule(existing) === null) {
    return page(card(ctx.t('mkBuilderTitle'), h('p', {}, ctx.t('mkNotARuleSegment', { name: editing, plugin: existing.plugin }))));
  }
  const name = h('input', { id: 'mk-segment-name', name: 'name', required: true, autocomplete: 'off', spellcheck: 'false', pattern: '[a-z0-9_-]{1,64}', maxlength: '64' });
  const description = h('input', { id: 'mk-segment-description', name: 'description', autocomplete: 'off' });
  const rule = h('textarea', {
    id: 'mk-rule',
    name: 'rule',
    class: 'mk-rule',
    rows: '5',
    spellcheck: 'false',
    autocapitalize: 'off',
    autocomplete: 'off',
    'aria-describedby': 'mk-rule-help mk-rule-check',
  });
  if (existing) {
    name.value = existing.name;
    name.readOnly = true;
    description.value = existing.description || '';
    rule.value = segmentRule(existing);
  }
  const check = h('div', { id: 'mk-rule-check', class: 'mk-check', role: 'status', 'aria-live': 'polite' });
  const preview = h('div', { id: 'mk-preview', class: 'mk-preview', 'aria-live': 'polite' });
  const save = h('button', { type: 'submit' }, existing ? ctx.t('mkSaveChanges') : ctx.t('mkSaveSegment'));
  let sequence = 0;
  let timer = null;
  let verdict = null;

  const showProblems = (text, problems) => {
    rule.setAttribute('aria-invalid', 'true');
    fill(
      check,
      h('p', { class: 'mk-muted' }, ctx.t('mkRuleProblems', { count: problems.length })),
      problems.map((p) => problemView(ctx, text, p, rule)),
    );
  };

  const runPreview = async (text, mine) => {
    fill(preview, h('p', { class: 'mk-loading' }, ctx.t('mkCounting')));
    let answer;
    try {
      answer = await ctx.api.post('/v1/segments/preview', { plugin: 'rules', params: { ...(existing ? existing.params : {}), rule: text } });
    } catch (error) {
      if (mine !== sequence) return;
      fill(preview);
      if (error.details && Array.isArray(error.details.problems)) showProblems(text, error.details.problems);
      else if (error.status === 422) fill(preview, h('p', { class: 'mk-warning' }, error.message));
      else ctx.fail(error);
      return;
    }
    if (mine !== sequence) return;
    fill(
      preview,
      h('p', { class: 'mk-muted' }, ctx.t('mkPreviewLabel')),
      h('p', { class: 'mk-big', id: 'mk-preview-count', 'data-members': answer.members }, int(answer.members)),
      h('p', {}, ctx.t('mkPreviewOf', { members: answer.members, evaluated: int(answer.evaluated), purpose: answer.purpose })),
      answer.sample.length > 0
        ? h(
            'div',
            {},
            h('p', { class: 'hint' }, ctx.t('mkSample')),
            h('ul', { class: 'mk-sample' }, answer.sample.slice(0, 10).map((s) => h('li', {}, link(ctx, 'profiles/' + enc(s), s.slice(0, 12) + '…')))),
          )
        : null,
    );
  };

  const runCheck = async () => {
    const text = rule.value;
    sequence += 1;
    const mine = sequence;
    verdict = null;
    if (!text.trim()) {
      rule.removeAttribute('aria-invalid');
      fill(check, h('p', { class: 'mk-muted' }, ctx.t('mkRuleEmpty')));
      fill(preview);
      return;
    }
    fill(check, h('p', { class: 'mk-loading' }, ctx.t('mkChecking')));
    let answer;
    try {
      answer = await ctx.api.post('/v1/rules/check', { rule: text });
    } catch (error) {
      if (mine === sequence) {
        fill(check);
        ctx.fail(error);
      }
      return;
    }
    if (mine !== sequence) return;
    verdict = answer;
    if (!answer.valid) {
      showProblems(text, answer.errors);
      fill(preview);
      return;
    }
    rule.removeAttribute('aria-invalid');
    fill(
      check,
      h(
        'div',
        { class: 'mk-ok' },
        h('p', {}, h('span', { class: 'mk-badge mk-valid' }, ctx.t('mkRuleValid')), ' ', answer.explanation),
        answer.canonical.replace(/\s+/g, ' ') !== text.trim().replace(/\s+/g, ' ') ? h('p', { class: 'hint' }, ctx.t('mkCanonical'), ' ', h('code', {}, answer.canonical)) : null,
      ),
    );
    await runPreview(text, mine);
  };

  rule.addEventListener('input', () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(runCheck, CHECK_DELAY_MS);
  });

  const form = h(
    'form',
    { novalidate: true },
    h(
      'div',
      { class: 'mk-form-grid' },
      field('mk-segment-name', ctx.t('mkSegmentName'), name, existing ? null : ctx.t('mkNameHint')),
      field('mk-segment-description', ctx.t('mkDescription'), description),
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'mk-rule' }, ctx.t('mkRule')),
      rule,
      h('p', { class: 'hint', id: 'mk-rule-help' }, ctx.t('mkRuleHelp'), ' ', h('code', {}, 'count(purchase, last 90 days) >= 3 and trait.city = "Oslo"')),
      check,
    ),
    preview,
    h('div', { class: 'mk-actions' }, save, button(ctx.t('mkCancel'), () => go(ctx, existing ? 'segments/' + enc(existing.name) : 'segments'), { class: 'secondary' })),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(ctx, save, async () => {
      const segmentName = name.value.trim();
      if (!NAME.test(segmentName)) {
        name.setAttribute('aria-invalid', 'true');
        name.focus();
        throw new Error(ctx.t('mkBadName', { name: segmentName }));
      }
      name.removeAttribute('aria-invalid');
      window.clearTimeout(timer);
      if (!existing) {
        try {
          await ctx.api.get('/v1/segments/' + enc(segmentName));
          name.focus();
          throw new Error(ctx.t('mkSegmentExists', { name: segmentName }));
        } catch (error) {
          if (!(error && error.status === 404)) throw error;
        }
      }
      const text = rule.value;
      try {
        await ctx.api.put('/v1/segments/' + enc(segmentName), {
          plugin: 'rules',
          params: { ...(existing ? existing.params : {}), rule: text },
          description: description.value.trim(),
        });
      } catch (error) {
        if (error.details && Array.isArray(error.details.problems)) {
          showProblems(text, error.details.problems);
          rule.focus();
          return;
        }
        throw error;
      }
      ctx.notice(ctx.t('mkSegmentSaved', { name: segmentName }));
      go(ctx, 'segments/' + enc(segmentName));
    });
  });
  if (existing) runCheck();
  else fill(check, h('p', { class: 'mk-muted' }, ctx.t('mkRuleEmpty')));
  return page(card(existing ? ctx.t('mkEditSegmentTitle', { name: existing.name }) : ctx.t('mkBuilderTitle'), h('p', { class: 'hint' }, ctx.t('mkBuilderIntro')), form));
}

// ---- the strategy catalog ---------------------------------------------------

function estimateText(e, format) {
  if (!e) return '—';
  return `${format(e.value)} (${format(e.lower)} … ${format(e.upper)})`;
}

const points = (value) => num(value * 100, { maximumFractionDigits: 2, signDisplay: 'exceptZero' });

async function catalogPage(ctx) {
  const catalog = await ctx.api.get('/v1/catalog');
  const pp = (v) => ctx.t('mkPoints', { value: points(v) });
  return page(
    card(ctx.t('mkCatalogTitle'), h('p', { class: 'hint' }, ctx.t('mkCatalogIntro'))),
    catalog.strategies.length === 0
      ? card(ctx.t('mkCatalogTitle'), h('p', { class: 'empty' }, ctx.t('mkNoStrategies')))
      : catalog.strategies.map((s) =>
          h(
            'section',
            { class: 'card mk-strategy', 'data-strategy': s.name },
            h('h3', {}, `${s.name} `, h('span', { class: 'mk-muted' }, s.version)),
            h('p', {}, s.description),
            sub(ctx.t('mkActionsTitle'), h('ul', {}, s.actions.map((a) => h('li', {}, h('code', {}, a.name), a.description ? ' — ' + a.description : '')))),
            sub(
              ctx.t('mkParameters'),
              table(
                ctx,
                [ctx.t('mkName'), ctx.t('mkKind'), ctx.t('mkDefault'), ctx.t('mkRange'), ctx.t('mkDescription')],
                s.parameters.map((p) => [
                  h('code', {}, p.name),
                  p.kind,
                  Array.isArray(p.default) ? p.default.join(', ') : text(p.default),
                  p.choices && p.choices.length ? p.choices.join(', ') : p.min !== null || p.max !== null ? `${text(p.min)} … ${text(p.max)}` : '—',
                  p.description || '',
                ]),
                'mkNoParameters',
              ),
            ),
            facts([
              [ctx.t('mkPurposes'), s.purposes.map((p) => (s.granted_purposes.includes(p) ? p : ctx.t('mkNotGrantedPurpose', { purpose: p }))).join(', ') || '—'],
              [ctx.t('mkFieldsRead'), s.fields.join(', ') || '—'],
            ]),
            sub(
              ctx.t('mkTrackRecord'),
              table(
                ctx,
                [ctx.t('mkCampaign'), ctx.t('mkSegment'), ctx.t('mkStatus'), ctx.t('mkArms'), ctx.t('mkUpliftCol')],
                s.track_record.map((r) => [
                  link(ctx, 'campaigns/' + enc(r.campaign), r.campaign),
                  r.segment,
                  badge(ctx, r.status),
                  ctx.t('mkArmsText', { treatment: int(r.treatment_subjects), control: int(r.control_subjects) }),
                  estimateText(r.absolute_uplift, pp),
                ]),
                'mkNoTrackRecord',
              ),
            ),
            canChange(ctx)
              ? h('div', { class: 'mk-actions' }, button(ctx.t('mkUseStrategy', { strategy: s.name }), () => go(ctx, 'campaign-wizard/strategy/' + enc(s.name))))
              : null,
          ),
        ),
  );
}

// ---- campaigns --------------------------------------------------------------

async function campaignsPage(ctx, params) {
  if (params.length > 0) return campaignPage(ctx, params[0]);
  const answer = await ctx.api.get('/v1/campaigns');
  return page(
    card(
      ctx.t('mkCampaignsTitle'),
      canChange(ctx) ? h('div', { class: 'mk-actions' }, button(ctx.t('mkNewCampaign'), () => go(ctx, 'campaign-wizard'))) : null,
      table(
        ctx,
        [ctx.t('mkName'), ctx.t('mkStatus'), ctx.t('mkStrategy'), ctx.t('mkSegment'), ctx.t('mkHoldout'), ctx.t('mkUpdated')],
        answer.campaigns.map((c) => [
          link(ctx, 'campaigns/' + enc(c.name), c.name),
          badge(ctx, c.status),
          c.strategy,
          link(ctx, 'segments/' + enc(c.segment), c.segment),
          pct(c.holdout, 1),
          when(c.updated_at_ms),
        ]),
        'mkNoCampaigns',
      ),
    ),
  );
}

/** The forecast of a simulation, with the off-policy estimate's interval. */
function simulationView(ctx, sim) {
  const off = sim.off_policy;
  const rows = [];
  if (off) {
    rows.push({ label: 'SNIPS', ...off.estimate.snips });
    rows.push({ label: 'IPS', ...off.estimate.ips });
    if (off.estimate.dr) rows.push({ label: ctx.t('mkDoublyRobust'), ...off.estimate.dr });
  }
  return h(
    'div',
    { class: 'mk-simulation', 'data-computed-at': sim.computed_at_ms },
    h(
      'div',
      { class: 'mk-grid2' },
      facts([
        [ctx.t('mkSegmentSize'), int(sim.segment_size)],
        [ctx.t('mkConsenting'), ctx.t('mkConsentingOf', { consenting: int(sim.consenting), sampled: int(sim.sampled) })],
        [ctx.t('mkExpectedTreated'), h('span', { 'data-expected-treated': sim.expected_treated }, int(sim.expected_treated))],
        [ctx.t('mkExpectedControl'), h('span', { 'data-expected-control': sim.expected_control }, int(sim.expected_control))],
      ]),
      facts([
        [ctx.t('mkMaxDecisions'), int(sim.max_decisions)],
        [ctx.t('mkExpectedReward'), dec(sim.expected_reward, 4)],
        [ctx.t('mkComputedAt'), when(sim.computed_at_ms)],
      ]),
    ),
    table(
      ctx,
      [ctx.t('mkAction'), ctx.t('mkShare'), ctx.t('mkExpectedReward')],
      sim.actions.map((a) => [h('code', {}, a.action), pct(a.share, 1), dec(a.expected_reward, 4)]),
    ),
    sim.notes ? h('p', { class: 'hint' }, sim.notes) : null,
    off
      ? sub(
          ctx.t('mkEstimateTitle'),
          h(
            'p',
            { class: 'mk-estimate-headline' },
            ctx.t('mkEstimateHeadline', {
              value: pct(off.estimate.snips.value, 2),
              lower: pct(off.estimate.snips.lower, 2),
              upper: pct(off.estimate.snips.upper, 2),
              rows: int(off.rows),
              campaign: off.logs_from,
            }),
          ),
          intervalChart(rows, {
            title: ctx.t('mkEstimateCaption'),
            summary: ctx.t('mkEstimateSummary', { value: pct(off.estimate.snips.value, 2), lower: pct(off.estimate.snips.lower, 2), upper: pct(off.estimate.snips.upper, 2) }),
            axisLabel: ctx.t('mkRatePerDecision'),
            format: (v) => pct(v, 1),
            columns: [ctx.t('mkEstimator'), ctx.t('mkEstimate'), ctx.t('mkLower'), ctx.t('mkUpper')],
          }),
          facts([
            [ctx.t('mkLoggedRate'), pct(off.logged_value, 2)],
            [ctx.t('mkEffectiveSample'), dec(off.estimate.effective_sample_size, 1)],
            [ctx.t('mkMaxWeight'), dec(off.estimate.max_weight, 2)],
          ]),
        )
      : h('p', { class: 'mk-muted' }, ctx.t('mkNoOffPolicy', { why: sim.off_policy_note || '' })),
  );
}

/** The evaluation: people per arm and the uplift with its interval. */
function evaluationView(ctx, ev) {
  const report = ev.report;
  const pp = (v) => ctx.t('mkPoints', { value: points(v) });
  const money = (v) => num(v, { maximumFractionDigits: 2, signDisplay: 'exceptZero' });
  const arms = report
    ? [
        [ctx.t('mkTreatment'), report.treatment],
        [ctx.t('mkControl'), report.control],
      ].map(([arm, a]) => [arm, int(a.subjects), int(a.conversions), pct(a.conversion_rate, 1), dec(a.revenue_per_subject, 2)])
    : [
        [ctx.t('mkTreatment'), int(ev.treatment_subjects), '—', '—', '—'],
        [ctx.t('mkControl'), int(ev.control_subjects), '—', '—', '—'],
      ];
  const parts = [
    h('p', { class: 'hint' }, ctx.t('mkEvaluationGoal', { event: ev.goal_event, days: ev.window_days, holdout: pct(ev.holdout, 1), date: when(ev.computed_at_ms) })),
    table(ctx, [ctx.t('mkArm'), ctx.t('mkPeople'), ctx.t('mkConversions'), ctx.t('mkConversionRate'), ctx.t('mkRevenuePerPerson')], arms),
  ];
  if (!report) {
    parts.push(h('p', { class: 'mk-muted', id: 'mk-too-few' }, ctx.t('mkTooFew')));
    return h('div', { class: 'mk-evaluation' }, parts);
  }
  const a = report.absolute_uplift;
  if (report.sample_ratio.mismatch) {
    parts.push(h('p', { class: 'mk-warning', role: 'note' }, ctx.t('mkSrm', { observed: pct(report.sample_ratio.observed_control_share, 1), expected: pct(report.sample_ratio.expected_control_share, 1), p: report.sample_ratio.p_value.toExponential(2) })));
  }
  parts.push(
    h('p', { class: 'mk-estimate-headline', id: 'mk-uplift-headline' }, ctx.t('mkUpliftHeadline', { value: pp(a.value), lower: pp(a.lower), upper: pp(a.upper) })),
    h('div', { id: 'mk-uplift-chart' },
      intervalChart([{ label: ctx.t('mkAbsoluteUplift'), value: a.value, lower: a.lower, upper: a.upper }], {
        title: ctx.t('mkUpliftCaption'),
        summary: ctx.t('mkUpliftSummary', { value: pp(a.value), lower: pp(a.lower), upper: pp(a.upper) }),
        axisLabel: ctx.t('mkUpliftAxis'),
        format: pp,
        tickFormat: points,
        columns: [ctx.t('mkMeasure'), ctx.t('mkEstimate'), ctx.t('mkLower'), ctx.t('mkUpper')],
      })),
    h('p', { class: 'hint' }, a.lower > 0 ? ctx.t('mkReadAbove') : a.upper < 0 ? ctx.t('mkReadBelow') : ctx.t('mkReadSpans')),
    h('div', { id: 'mk-revenue-chart' },
      intervalChart([{ label: ctx.t('mkRevenueDiff'), ...report.revenue_per_subject }], {
        title: ctx.t('mkRevenueCaption'),
        summary: ctx.t('mkRevenueSummary', { value: money(report.revenue_per_subject.value), lower: money(report.revenue_per_subject.lower), upper: money(report.revenue_per_subject.upper) }),
        axisLabel: ctx.t('mkRevenueAxis'),
        format: money,
        columns: [ctx.t('mkMeasure'), ctx.t('mkEstimate'), ctx.t('mkLower'), ctx.t('mkUpper')],
      })),
    facts([
      [ctx.t('mkRelativeUplift'), report.relative_uplift ? estimateText(report.relative_uplift, (v) => num(v, { style: 'percent', maximumFractionDigits: 1, signDisplay: 'exceptZero' })) : ctx.t('mkNoRelative')],
      [ctx.t('mkSampleRatio'), report.sample_ratio.mismatch ? ctx.t('mkSrmShort') : ctx.t('mkSrmOk', { observed: pct(report.sample_ratio.observed_control_share, 1) })],
      report.cuped ? [ctx.t('mkCuped'), ctx.t('mkCupedText', { reduction: pct(report.cuped.conversion.variance_reduction, 0), uplift: estimateText(report.cuped.conversion.uplift, pp) })] : null,
      [ctx.t('mkWindowOpen'), int(ev.window_open)],
      [ctx.t('mkWithoutConsent'), int(ev.without_consent)],
    ]),
  );
  return h('div', { class: 'mk-evaluation' }, parts);
}

async function campaignPage(ctx, name) {
  const campaign = await ctx.api.get('/v1/campaigns/' + enc(name));
  const c = campaign;
  const actions = [];
  const transition = (status, label, attributes = {}) =>
    button(label, (event) =>
      busy(ctx, event.currentTarget, async () => {
        if (status === 'completed' && !window.confirm(ctx.t('mkConfirmComplete', { name }))) return;
        await ctx.api.post(`/v1/campaigns/${enc(name)}/status`, { status });
        ctx.notice(ctx.t('mkStatusChanged', { name, status: ctx.t('mkStatus_' + status) }));
        go(ctx, 'campaigns/' + enc(name));
      }), attributes);
  if (canChange(ctx)) {
    if (c.status === 'draft' || c.status === 'simulated') {
      actions.push(button(ctx.t('mkSimulate'), (event) =>
        busy(ctx, event.currentTarget, async () => {
          await ctx.api.post(`/v1/campaigns/${enc(name)}/simulate`);
          ctx.notice(ctx.t('mkSimulated', { name }));
          go(ctx, 'campaigns/' + enc(name));
        }), { class: c.status === 'draft' ? '' : 'secondary' }));
    }
    if (c.status === 'simulated') actions.push(transition('running', ctx.t('mkEnable', { holdout: pct(c.holdout, 1) })));
    if (c.status === 'paused') actions.push(transition('running', ctx.t('mkResume')));
    if (c.status === 'running') actions.push(transition('paused', ctx.t('mkPause'), { class: 'secondary' }));
    if (c.status === 'running' || c.status === 'paused') actions.push(transition('completed', ctx.t('mkComplete'), { class: 'secondary' }));
  }
  const started = c.status === 'running' || c.status === 'paused' || c.status === 'completed';
  return page(
    card(
      ctx.t('mkCampaignTitle', { name }),
      h('p', {}, badge(ctx, c.status), ' ', c.description || ''),
      facts([
        [ctx.t('mkStrategy'), `${c.strategy} ${c.strategy_version}`],
        [ctx.t('mkParameters'), Object.keys(c.params).length ? Object.entries(c.params).map(([k, v]) => `${k} = ${Array.isArray(v) ? v.join(' ') : text(v)}`).join(', ') : '—'],
        [ctx.t('mkSegment'), link(ctx, 'segments/' + enc(c.segment), c.segment)],
        [ctx.t('mkPurpose'), c.purpose],
        [ctx.t('mkHoldout'), pct(c.holdout, 1)],
        [ctx.t('mkGoal'), ctx.t('mkGoalText', { event: c.goal.event || ctx.t('mkConversionFeedback'), value: c.goal.value || '—', days: c.goal.window_days })],
        [ctx.t('mkFallback'), c.fallback || ctx.t('mkNoAction')],
        c.frequency_cap ? [ctx.t('mkCap'), ctx.t('mkCapText', { max: c.frequency_cap.max, days: c.frequency_cap.days })] : null,
        c.budget ? [ctx.t('mkBudget'), int(c.budget)] : null,
      ]),
      actions.length ? h('div', { class: 'mk-actions' }, actions) : null,
    ),
    card(ctx.t('mkResultsTitle'), started ? deferred(ctx, async () => evaluationView(ctx, await ctx.api.get(`/v1/campaigns/${enc(name)}/evaluation`))) : h('p', { class: 'empty' }, ctx.t('mkNotStarted'))),
    card(ctx.t('mkForecastTitle'), c.simulation ? simulationView(ctx, c.simulation) : h('p', { class: 'empty' }, ctx.t('mkNotSimulated'))),
    card(
      ctx.t('mkHistory'),
      table(
        ctx,
        [ctx.t('mkWhen'), ctx.t('mkChange'), ctx.t('mkBy')],
        [...(c.history || [])].reverse().map((e) => [when(e.at_ms), `${e.from ? ctx.t('mkStatus_' + e.from) : '—'} → ${ctx.t('mkStatus_' + e.to)}`, text(e.by)]),
      ),
    ),
  );
}

// ---- the campaign wizard ----------------------------------------------------

function parameterInput(p, id) {
  const value = p.default;
  if (p.kind === 'boolean') {
    return h('input', { id, type: 'checkbox', checked: value === true });
  }
  if (p.choices && p.choices.length) {
    return select(id, p.choices.map((c) => [String(c), String(c)]), value === null || value === undefined ? undefined : String(value));
  }
  if (p.kind === 'number' || p.kind === 'integer') {
    return h('input', {
      id,
      type: 'number',
      inputmode: 'decimal',
      step: p.kind === 'integer' ? '1' : 'any',
      min: p.min === null || p.min === undefined ? undefined : p.min,
      max: p.max === null || p.max === undefined ? undefined : p.max,
      value: value === null || value === undefined ? '' : value,
    });
  }
  return h('input', { id, type: 'text', value: value === null || value === undefined ? '' : String(value) });
}

function readParameter(ctx, p, input) {
  if (p.kind === 'boolean') return input.checked;
  const raw = input.value.trim();
  if (raw === '') {
    if (p.required) throw new Error(ctx.t('mkParamRequired', { name: p.name }));
    return undefined;
  }
  if (p.kind === 'number' || p.kind === 'integer') {
    const n = Number(raw);
    if (!Number.isFinite(n) || (p.kind === 'integer' && !Number.isInteger(n))) throw new Error(ctx.t('mkParamNumber', { name: p.name }));
    if ((p.min !== null && p.min !== undefined && n < p.min) || (p.max !== null && p.max !== undefined && n > p.max)) {
      throw new Error(ctx.t('mkParamRange', { name: p.name, min: text(p.min), max: text(p.max) }));
    }
    return n;
  }
  if (p.kind === 'text-list') return raw.split(',').map((v) => v.trim()).filter(Boolean);
  return raw;
}

async function wizardPage(ctx, params) {
  const preset = {};
  for (let i = 0; i + 1 < params.length; i += 2) preset[params[i]] = params[i + 1];
  const [catalog, segmentList, schema] = await Promise.all([
    ctx.api.get('/v1/catalog'),
    ctx.api.get('/v1/segments'),
    ctx.api.get('/v1/schema'),
  ]);
  const strategies = catalog.strategies;
  const segments = [...segmentList.segments].sort((a, b) => a.name.localeCompare(b.name));
  if (strategies.length === 0 || segments.length === 0) {
    return page(card(ctx.t('mkWizardTitle'), h('p', { class: 'empty' }, strategies.length === 0 ? ctx.t('mkNoStrategies') : ctx.t('mkWizardNeedsSegment')),
      segments.length === 0 ? button(ctx.t('mkNewSegment'), () => go(ctx, 'segment-builder')) : null));
  }
  const events = (schema.events || []).map((e) => e.type).sort();

  const steps = h('ol', { class: 'mk-steps', 'aria-label': ctx.t('mkSteps') }, ['mkStepDefine', 'mkStepSimulate', 'mkStepEnable'].map((k, i) => h('li', { 'data-step': i + 1 }, `${i + 1}. ${ctx.t(k)}`)));
  const setStep = (n) => {
    for (const li of steps.children) {
      const step = Number(li.dataset.step);
      if (step === n) li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
      li.classList.toggle('mk-done', step < n);
    }
  };
  setStep(1);

  const name = h('input', { id: 'mk-campaign-name', required: true, autocomplete: 'off', spellcheck: 'false', maxlength: '64' });
  const strategy = select('mk-strategy', strategies.map((s) => [s.name, `${s.name} ${s.version}`]), preset.strategy || strategies[0].name);
  const segment = select('mk-segment', segments.map((s) => [s.name, ctx.t('mkSegmentOption', { name: s.name, members: int(s.members) })]), preset.segment || segments[0].name);
  const holdout = h('input', { id: 'mk-holdout', type: 'number', min: '0', max: '50', step: '1', value: '10', inputmode: 'numeric' });
  const goalEvent = select('mk-goal-event', events.map((e) => [e, e]), events.includes('purchase') ? 'purchase' : events[0]);
  const goalValue = h('select', { id: 'mk-goal-value' });
  const windowDays = h('input', { id: 'mk-window', type: 'number', min: '1', max: '365', step: '1', value: '7', inputmode: 'numeric' });
  const capMax = h('input', { id: 'mk-cap-max', type: 'number', min: '1', step: '1', inputmode: 'numeric' });
  const capDays = h('input', { id: 'mk-cap-days', type: 'number', min: '1', step: '1', inputmode: 'numeric' });
  const description = h('input', { id: 'mk-campaign-description', autocomplete: 'off' });
  const strategyBox = h('div', {});
  let chosen = null;
  let paramInputs = [];
  let purpose = null;
  let fallback = null;

  const fillGoalValue = () => {
    const type = (schema.events || []).find((e) => e.type === goalEvent.value);
    const numeric = type ? Object.entries(type.properties || {}).filter(([, p]) => p.type === 'number').map(([n]) => n) : [];
    fill(goalValue, h('option', { value: '' }, ctx.t('mkNoValue')), numeric.map((n) => h('option', { value: n, selected: n === 'amount' }, n)));
  };
  goalEvent.addEventListener('change', fillGoalValue);
  fillGoalValue();

  const fillStrategy = () => {
    chosen = strategies.find((s) => s.name === strategy.value);
    paramInputs = chosen.parameters.map((p) => [p, parameterInput(p, 'mk-param-' + p.name)]);
    // The purposes it works for and was granted; the segment's own first,
    // since only people who consent to it are in the segment.
    const granted = chosen.purposes.filter((p) => chosen.granted_purposes.includes(p));
    const purposes = granted.length ? granted : chosen.purposes;
    const ofSegment = (segments.find((s) => s.name === segment.value) || {}).purpose;
    purpose = select('mk-purpose', purposes.map((p) => [p, p]), purposes.includes(ofSegment) ? ofSegment : purposes[0]);
    fallback = select('mk-fallback', [['', ctx.t('mkNoAction')], ...chosen.actions.map((a) => [a.name, a.name])], '');
    fill(
      strategyBox,
      h('p', { class: 'hint' }, chosen.description),
      paramInputs.length
        ? h('fieldset', { class: 'field' }, h('legend', {}, ctx.t('mkStrategyParameters')), h('div', { class: 'mk-form-grid' },
            paramInputs.map(([p, input]) => field('mk-param-' + p.name, p.name, input, p.description || null))))
        : null,
      h('div', { class: 'mk-form-grid' },
        field('mk-purpose', ctx.t('mkPurpose'), purpose, ctx.t('mkPurposeHint')),
        field('mk-fallback', ctx.t('mkFallback'), fallback, ctx.t('mkFallbackHint'))),
    );
  };
  strategy.addEventListener('change', fillStrategy);
  segment.addEventListener('change', () => {
    const ofSegment = (segments.find((s) => s.name === segment.value) || {}).purpose;
    if ([...purpose.options].some((o) => o.value === ofSegment)) purpose.value = ofSegment;
  });
  fillStrategy();

  const save = h('button', { type: 'submit' }, ctx.t('mkSaveDraft'));
  const form = h(
    'form',
    { novalidate: true },
    h('div', { class: 'mk-form-grid' },
      field('mk-campaign-name', ctx.t('mkCampaignName'), name, ctx.t('mkNameHint')),
      field('mk-strategy', ctx.t('mkStrategy'), strategy),
      field('mk-segment', ctx.t('mkSegment'), segment),
      field('mk-holdout', ctx.t('mkHoldoutPercent'), holdout, ctx.t('mkHoldoutHint'))),
    strategyBox,
    h('fieldset', { class: 'field' }, h('legend', {}, ctx.t('mkGoal')), h('div', { class: 'mk-form-grid' },
      field('mk-goal-event', ctx.t('mkGoalEvent'), goalEvent),
      field('mk-goal-value', ctx.t('mkGoalValue'), goalValue),
      field('mk-window', ctx.t('mkWindowDays'), windowDays))),
    h('fieldset', { class: 'field' }, h('legend', {}, ctx.t('mkCapOptional')), h('div', { class: 'mk-form-grid' },
      field('mk-cap-max', ctx.t('mkCapMax'), capMax),
      field('mk-cap-days', ctx.t('mkCapDays'), capDays))),
    field('mk-campaign-description', ctx.t('mkDescription'), description),
    h('div', { class: 'mk-actions' }, save),
  );
  const after = h('div', { id: 'mk-wizard-next' });
  let saved = null;

  const enableStep = () => {
    setStep(3);
    const enable = button(ctx.t('mkEnable', { holdout: pct(saved.holdout, 1) }), (event) =>
      busy(ctx, event.currentTarget, async () => {
        await ctx.api.post(`/v1/campaigns/${enc(saved.name)}/status`, { status: 'running' });
        ctx.notice(ctx.t('mkEnabled', { name: saved.name, holdout: pct(saved.holdout, 1) }));
        go(ctx, 'campaigns/' + enc(saved.name));
      }));
    return enable;
  };

  const simulateStep = () => {
    setStep(2);
    const result = h('div', { id: 'mk-simulation-result', 'aria-live': 'polite' });
    const simulate = button(ctx.t('mkSimulate'), (event) =>
      busy(ctx, event.currentTarget, async () => {
        fill(result, h('p', { class: 'mk-loading' }, ctx.t('mkSimulating')));
        let sim;
        try {
          sim = await ctx.api.post(`/v1/campaigns/${enc(saved.name)}/simulate`);
        } catch (error) {
          fill(result);
          throw error;
        }
        const enable = enableStep();
        fill(result, h('h3', {}, ctx.t('mkForecastTitle')), simulationView(ctx, sim), h('div', { class: 'mk-actions' }, enable));
        enable.focus();
      }));
    fill(
      after,
      h('section', { class: 'card' },
        h('h2', {}, ctx.t('mkDraftSaved', { name: saved.name })),
        h('p', {}, ctx.t('mkSimulateIntro')),
        h('div', { class: 'mk-actions' }, simulate),
        result),
    );
    simulate.focus();
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(ctx, save, async () => {
      const campaignName = name.value.trim();
      if (!NAME.test(campaignName)) {
        name.setAttribute('aria-invalid', 'true');
        name.focus();
        throw new Error(ctx.t('mkBadName', { name: campaignName }));
      }
      name.removeAttribute('aria-invalid');
      const share = Number(holdout.value);
      if (holdout.value.trim() === '' || !Number.isFinite(share) || share < 0 || share > 50) {
        holdout.focus();
        throw new Error(ctx.t('mkBadHoldout', { value: holdout.value }));
      }
      const body = {
        strategy: chosen.name,
        params: {},
        segment: segment.value,
        purpose: purpose.value,
        holdout: share / 100,
        goal: { event: goalEvent.value, window_days: Number(windowDays.value) || 7 },
        description: description.value.trim(),
      };
      for (const [p, input] of paramInputs) {
        const value = readParameter(ctx, p, input);
        if (value !== undefined) body.params[p.name] = value;
      }
      if (goalValue.value) body.goal.value = goalValue.value;
      if (fallback.value) body.fallback = fallback.value;
      if (capMax.value.trim() || capDays.value.trim()) {
        const max = Number(capMax.value);
        const days = Number(capDays.value);
        if (!Number.isInteger(max) || max < 1 || !Number.isInteger(days) || days < 1) throw new Error(ctx.t('mkBadCap'));
        body.frequency_cap = { max, days };
      }
      if (!saved || saved.name !== campaignName) {
        try {
          await ctx.api.get('/v1/campaigns/' + enc(campaignName));
          name.focus();
          throw new Error(ctx.t('mkCampaignExists', { name: campaignName }));
        } catch (error) {
          if (!(error && error.status === 404)) throw error;
        }
      }
      saved = await ctx.api.put('/v1/campaigns/' + enc(campaignName), body);
      ctx.notice(ctx.t('mkDraftSaved', { name: campaignName }));
      simulateStep();
    });
  });

  return page(card(ctx.t('mkWizardTitle'), h('p', { class: 'hint' }, ctx.t('mkWizardIntro')), steps, form), after);
}

// ---- pages and strings ------------------------------------------------------

export const pages = [
  { id: 'imports', nav: 'mkNavImports', roles: STAFF, render: importsPage },
  { id: 'profiles', nav: 'mkNavProfiles', roles: STAFF, render: profilesPage },
  { id: 'segments', nav: 'mkNavSegments', roles: [...READERS, 'operator'], render: segmentsPage },
  { id: 'segment-builder', nav: 'mkNavBuilder', roles: STAFF, render: builderPage },
  { id: 'catalog', nav: 'mkNavCatalog', roles: [...READERS, 'operator'], render: catalogPage },
  { id: 'campaigns', nav: 'mkNavCampaigns', roles: [...READERS, 'operator'], render: campaignsPage },
  { id: 'campaign-wizard', nav: 'mkNavWizard', roles: STAFF, render: wizardPage },
];


export const strings = {
  en: {
    mkNavImports: 'Imports',
    mkNavProfiles: 'Profiles',
    mkNavSegments: 'Segments',
    mkNavBuilder: 'Segment builder',
    mkNavCatalog: 'Strategy catalog',
    mkNavCampaigns: 'Campaigns',
    mkNavWizard: 'New campaign',
    mkLoading: 'Loading…',
    mkCouldNotLoad: 'This part could not be loaded.',
    mkNothing: 'Nothing yet.',
    mkAny: 'Any',
    mkMore: 'Show more',
    mkCancel: 'Cancel',
    mkActions: 'Actions',
    mkId: 'Id',
    mkName: 'Name',
    mkDescription: 'Description',
    mkStatus: 'Status',
    mkState: 'State',
    mkStarted: 'Started',
    mkFinished: 'Finished',
    mkStartedBy: 'Started by',
    mkError: 'Error',
    mkCount: 'Count',
    mkWhen: 'When',
    mkBy: 'By',
    mkChange: 'Change',
    mkValue: 'Value',
    mkKind: 'Kind',
    mkDefault: 'Default',
    mkRange: 'Range or choices',
    mkPurpose: 'Purpose',
    mkPurposes: 'Purposes',
    mkPlugin: 'Plugin',
    mkParameters: 'Parameters',
    mkUpdated: 'Updated',
    mkUpdatedBy: '{date} by {by}',
    mkCreated: 'Created',
    mkSince: 'since {date}',
    mkSinceCol: 'Since',
    mkStatus_running: 'Running',
    mkStatus_completed: 'Completed',
    mkStatus_failed: 'Failed',
    mkStatus_draft: 'Draft',
    mkStatus_simulated: 'Simulated',
    mkStatus_paused: 'Paused',
    mkStatus_open: 'Open',
    mkStatus_fixed: 'Fixed',
    mkStatus_replayed: 'Replayed',
    mkNameHint: '1 to 64 of a–z, 0–9, - and _.',
    mkBadName: '“{name}” is not a valid name: use 1 to 64 of a–z, 0–9, - and _.',

    mkImportsTitle: 'Imports',
    mkImportsIntro: 'Files and pushes brought in through connectors, newest first, with what each stored and what it set aside.',
    mkFilterStatus: 'Show imports that are',
    mkImport: 'Import',
    mkRowsRead: 'Rows read',
    mkAccepted: 'Accepted',
    mkRejected: 'Rejected',
    mkDeadLetters: 'Dead letters',
    mkNoImports: 'No imports yet. Import a file with “tessera import” or POST /v1/imports.',
    mkImportTitle: 'Import: {source}',
    mkConnector: 'Connector',
    mkQuality: 'Quality report',
    mkRowsRejected: 'Rows rejected',
    mkRecordsRefused: 'Records refused',
    mkEventsInserted: 'Events stored',
    mkDuplicates: 'Duplicates',
    mkExpired: 'Past retention',
    mkSubjectsNew: 'New people',
    mkSubjectsMatched: 'Matched people',
    mkMerges: 'Merges',
    mkRejectedByReason: 'Rejected, by reason',
    mkNoneRejected: 'Nothing was rejected.',
    mkReason: 'Reason',
    mkRow: 'Row',
    mkField: 'Field',
    mkRule: 'Rule',
    mkNoDeadLetters: 'No dead letters.',
    mkLettersIntro: 'Rows the connector rejected and records that could not be stored. An operator can fix a letter’s content; replay parses the fixed rows again.',
    mkLettersIntroOperator: 'Rows the connector rejected and records that could not be stored. Fix a letter’s content, then replay it.',
    mkReplay: 'Replay',
    mkReplayLetter: 'Replay dead letter {id}',
    mkReplayAll: 'Replay every letter not replayed yet',
    mkReplayed: 'Replayed {replayed}, failed again {failed}, events stored {events}.',
    mkFix: 'Fix',
    mkFixLetter: 'Fix dead letter {id}',
    mkFixTitle: 'Fix row {row}',
    mkFixBinary: 'This row is not UTF-8 text; fix it through the API with raw_base64.',
    mkHeader: 'Header: {header}',
    mkRawRow: 'The row',
    mkRecord: 'The record (JSON)',
    mkSaveFix: 'Save the fix',
    mkFixed: 'Saved. Replay the letter to store it.',
    mkNotJson: 'The record is not valid JSON: {message}',
    mkBackToImports: 'Back to imports',

    mkProfilesTitle: 'Profiles',
    mkProfilesIntro: 'Open a customer profile by its subject id: from a segment’s members, a preview sample or an export.',
    mkSubjectId: 'Subject id',
    mkOpenProfile: 'Open profile',
    mkNeedsSubject: 'Enter a subject id.',
    mkByIdentity: 'Find by identity',
    mkLookupAudited: 'The value is sent in the request body, never in the address; every lookup is audited.',
    mkLookupIsOperators: 'Finding a person by email, phone or member id is an operator’s task (a lookup is itself personal data, and is audited).',
    mkIdentityKind: 'Identity',
    mkIdentityValue: 'Value',
    mkKind_email: 'Email',
    mkKind_phone: 'Phone',
    mkKind_member_id: 'Member id',
    mkKind_device_id: 'Device id',
    mkLookUp: 'Look up',
    mkProfileTitle: 'Customer profile',
    mkTraits: 'Traits',
    mkTrait: 'Trait',
    mkNoTraits: 'No traits you may read.',
    mkWithheld: 'Withheld from your role: {names}.',
    mkActivity: 'Activity',
    mkEvent: 'Event',
    mkFirst: 'First',
    mkLast: 'Last',
    mkSums: 'Totals',
    mkNoEvents: 'No events.',
    mkSegmentsIn: 'Segments',
    mkInNoSegment: 'In no segment.',
    mkWhy: 'Why: {why}',
    mkConsents: 'Consents',
    mkConsent: 'Consent',
    mkGranted: 'Granted',
    mkNotGranted: 'Not granted',

    mkSegmentsTitle: 'Segments',
    mkNewSegment: 'New segment',
    mkMembers: 'Members',
    mkComputed: 'Computed',
    mkComputing: 'Computing…',
    mkNoSegments: 'No segments yet.',
    mkSegmentTitle: 'Segment: {name}',
    mkMembersNow: 'Members now',
    mkRecomputed: 'Computed {date}: {evaluated} consenting people evaluated, {entered} entered, {left} left.',
    mkComputingMembers: 'Computing its members…',
    mkEditRule: 'Edit the rule',
    mkRecompute: 'Recompute now',
    mkRecomputeStarted: 'Recomputing {name}; its size updates when it is done.',
    mkCampaignOnSegment: 'Start a campaign on it',
    mkSizesTitle: 'Size over time',
    mkSizesCaption: 'Members of {name} after each recompute',
    mkSizesSummary: 'Line chart of the members of {name} over {count} {count:recompute|recomputes}: {first} on {firstDate}, {last} on {lastDate}, at most {max}.',
    mkNoSizes: 'No size yet: the first recompute adds the first point.',
    mkRecommendationsTitle: 'Recommended strategies',
    mkNoRecommendations: 'No strategy runs for this tenant.',
    mkBasis_off_policy: 'estimated on decisions logged on this segment',
    mkBasis_track_record: 'from campaigns on similar segments',
    mkBasis_none: 'no evidence yet',
    mkScore: 'score {score}',
    mkUseStrategy: 'Start a campaign with {strategy}',
    mkSomeMembers: 'Some members',
    mkNoMembers: 'No members yet.',

    mkBuilderTitle: 'Segment builder',
    mkEditSegmentTitle: 'Edit segment {name}',
    mkBuilderIntro: 'Write the rule that decides who is in the segment. It is checked as you type against your schema, and once it is valid you see how many people it holds now.',
    mkSegmentName: 'Segment name',
    mkRuleHelp: 'The rules language (docs/rules.md), for example',
    mkRuleEmpty: 'Type a rule to check it.',
    mkChecking: 'Checking…',
    mkRuleProblems: 'The rule has {count} {count:problem|problems}:',
    mkAtPosition: 'Line {line}, column {column}:',
    mkShowInRule: 'Show in the rule',
    mkRuleValid: 'Valid',
    mkCanonical: 'Tessera reads it as',
    mkCounting: 'Counting the people it holds…',
    mkPreviewLabel: 'People in the segment now',
    mkPreviewOf: '{members} {members:person|people} of {evaluated} evaluated (those who consent to {purpose}).',
    mkSample: 'A sample of them:',
    mkSaveSegment: 'Save the segment',
    mkSaveChanges: 'Save the changes',
    mkSegmentExists: 'A segment named “{name}” exists already: open it to edit its rule, or choose another name.',
    mkSegmentSaved: 'Segment {name} saved; its members are being computed.',
    mkNotARuleSegment: 'Segment {name} is made by the {plugin} plugin, not by a rule; change its parameters through the API.',

    mkCatalogTitle: 'Strategy catalog',
    mkCatalogIntro: 'The strategies that run for this tenant: what they choose among, their parameters, the purposes they work for and how their campaigns did.',
    mkNoStrategies: 'No strategy plugin runs for this tenant.',
    mkActionsTitle: 'Actions it chooses among',
    mkNoParameters: 'No parameters.',
    mkNotGrantedPurpose: '{purpose} (not granted)',
    mkFieldsRead: 'Fields it reads',
    mkTrackRecord: 'Track record',
    mkNoTrackRecord: 'No evaluated campaign yet.',
    mkCampaign: 'Campaign',
    mkSegment: 'Segment',
    mkArms: 'People (treated / control)',
    mkArmsText: '{treatment} / {control}',
    mkUpliftCol: 'Uplift (95% interval)',
    mkPoints: '{value} pp',

    mkCampaignsTitle: 'Campaigns',
    mkNewCampaign: 'New campaign',
    mkNoCampaigns: 'No campaigns yet.',
    mkStrategy: 'Strategy',
    mkHoldout: 'Control group',
    mkCampaignTitle: 'Campaign: {name}',
    mkGoal: 'Goal',
    mkGoalText: '{event} (value: {value}) within {days} {days:day|days} of the first decision',
    mkConversionFeedback: 'conversion feedback',
    mkFallback: 'Fallback action',
    mkNoAction: 'No action',
    mkCap: 'Frequency cap',
    mkCapText: 'at most {max} in {days} {days:day|days}',
    mkBudget: 'Budget (decisions)',
    mkSimulate: 'Simulate',
    mkSimulated: 'Campaign {name} simulated.',
    mkSimulating: 'Simulating over the segment…',
    mkEnable: 'Enable, with a {holdout} control group',
    mkEnabled: 'Campaign {name} is running, with {holdout} held out as the control group.',
    mkResume: 'Resume',
    mkPause: 'Pause',
    mkComplete: 'Complete',
    mkConfirmComplete: 'Complete campaign {name}? It stops deciding for good; its results stay.',
    mkStatusChanged: 'Campaign {name}: {status}.',
    mkResultsTitle: 'Results',
    mkNotStarted: 'Results appear once the campaign runs.',
    mkForecastTitle: 'Forecast',
    mkNotSimulated: 'Not simulated yet: simulate it before enabling it.',
    mkHistory: 'History',
    mkSegmentSize: 'Segment size',
    mkConsenting: 'Consenting',
    mkConsentingOf: '{consenting} of {sampled} looked at',
    mkExpectedTreated: 'Expected to treat',
    mkExpectedControl: 'Expected in control',
    mkMaxDecisions: 'At most, decisions',
    mkExpectedReward: 'Expected reward',
    mkComputedAt: 'Computed',
    mkAction: 'Action',
    mkShare: 'Share',
    mkEstimateTitle: 'Estimate from logged decisions',
    mkEstimateHeadline: 'Estimated conversion rate per decision: {value} (95% interval {lower} to {upper}), replayed over {rows} decisions of campaign {campaign}.',
    mkEstimateCaption: 'Conversion rate per decision, with 95% intervals',
    mkEstimateSummary: 'Estimated conversion rate per decision {value}, 95% interval {lower} to {upper}.',
    mkRatePerDecision: 'Conversion rate per decision',
    mkEstimator: 'Estimator',
    mkEstimate: 'Estimate',
    mkLower: 'Lower (95%)',
    mkUpper: 'Upper (95%)',
    mkDoublyRobust: 'Doubly robust',
    mkLoggedRate: 'The logging strategy’s own rate',
    mkEffectiveSample: 'Effective sample size',
    mkMaxWeight: 'Largest weight',
    mkNoOffPolicy: 'No estimate from logged decisions: {why}',
    mkTreatment: 'Treatment',
    mkControl: 'Control',
    mkArm: 'Arm',
    mkPeople: 'People',
    mkConversions: 'Conversions',
    mkConversionRate: 'Conversion rate',
    mkRevenuePerPerson: 'Revenue per person',
    mkEvaluationGoal: 'Goal: {event} within {days} {days:day|days} of each person’s first decision; {holdout} held out; computed {date}.',
    mkTooFew: 'Too few people to compare yet: each arm needs at least two.',
    mkSrm: 'Sample ratio mismatch: {observed} of people are in control, not {expected} (p = {p}). Do not act on these figures before finding out why.',
    mkUpliftHeadline: 'Uplift in conversion rate: {value} (95% interval {lower} to {upper}).',
    mkUpliftCaption: 'Uplift over the control group, with its 95% interval',
    mkUpliftSummary: 'Uplift in conversion rate {value}, 95% interval {lower} to {upper}; the dashed line is no effect.',
    mkUpliftAxis: 'Treatment − control, percentage points',
    mkAbsoluteUplift: 'Conversion uplift',
    mkReadAbove: 'The interval is above zero: the campaign is unlikely to have no effect.',
    mkReadBelow: 'The interval is below zero: the campaign is doing harm.',
    mkReadSpans: 'The interval spans zero: the data cannot tell a gain from a loss yet.',
    mkRevenueCaption: 'Revenue per person, treatment minus control, with its 95% interval',
    mkRevenueSummary: 'Revenue per person difference {value}, 95% interval {lower} to {upper}.',
    mkRevenueAxis: 'Treatment − control, per person',
    mkRevenueDiff: 'Revenue per person',
    mkMeasure: 'Measure',
    mkRelativeUplift: 'Relative uplift',
    mkNoRelative: 'Not defined: an arm has no conversion.',
    mkSampleRatio: 'Sample ratio',
    mkSrmShort: 'Mismatch: see above',
    mkSrmOk: 'As configured ({observed} in control)',
    mkCuped: 'CUPED',
    mkCupedText: 'variance cut by {reduction}; adjusted uplift {uplift}',
    mkWindowOpen: 'People whose goal window is still open',
    mkWithoutConsent: 'Left out (consent withdrawn or erased)',

    mkWizardTitle: 'New campaign',
    mkWizardIntro: 'Choose a strategy and a segment, hold out a control group, simulate, then enable it.',
    mkWizardNeedsSegment: 'A campaign targets a segment: build one first.',
    mkSteps: 'Steps',
    mkStepDefine: 'Define',
    mkStepSimulate: 'Simulate',
    mkStepEnable: 'Enable',
    mkCampaignName: 'Campaign name',
    mkSegmentOption: '{name} ({members})',
    mkHoldoutPercent: 'Control group (%)',
    mkHoldoutHint: '0 to 50% of the segment, held out to measure the uplift.',
    mkStrategyParameters: 'Strategy parameters',
    mkPurposeHint: 'Only people who consent to it are decided for.',
    mkFallbackHint: 'Served when the strategy does not decide.',
    mkGoalEvent: 'Goal event',
    mkGoalValue: 'Its value property',
    mkNoValue: 'None (count conversions)',
    mkWindowDays: 'Window (days)',
    mkCapOptional: 'Frequency cap (optional)',
    mkCapMax: 'At most, per person',
    mkCapDays: 'Within (days)',
    mkSaveDraft: 'Save as draft',
    mkDraftSaved: 'Draft {name} saved.',
    mkSimulateIntro: 'Simulate it over the segment as it is now: the reach, the control group and what the strategy expects, and an estimate from decisions logged on the segment when there are some.',
    mkCampaignExists: 'A campaign named “{name}” exists already: choose another name.',
    mkBadHoldout: 'The control group is 0 to 50%, not “{value}”.',
    mkBadCap: 'A frequency cap needs both a whole number of decisions and of days, 1 or more.',
    mkParamRequired: 'Parameter {name} is required.',
    mkParamNumber: 'Parameter {name} takes a number.',
    mkParamRange: 'Parameter {name} is {min} to {max}.',
  },
  'zh-CN': {
    mkNavImports: '数据导入',
    mkNavProfiles: '客户档案',
    mkNavSegments: '人群细分',
    mkNavBuilder: '细分构建器',
    mkNavCatalog: '策略目录',
    mkNavCampaigns: '营销活动',
    mkNavWizard: '新建活动',
    mkLoading: '正在加载…',
    mkCouldNotLoad: '这部分无法加载。',
    mkNothing: '暂无内容。',
    mkAny: '全部',
    mkMore: '显示更多',
    mkCancel: '取消',
    mkActions: '操作',
    mkId: '编号',
    mkName: '名称',
    mkDescription: '说明',
    mkStatus: '状态',
    mkState: '状态',
    mkStarted: '开始时间',
    mkFinished: '结束时间',
    mkStartedBy: '发起者',
    mkError: '错误',
    mkCount: '数量',
    mkWhen: '时间',
    mkBy: '操作者',
    mkChange: '变更',
    mkValue: '值',
    mkKind: '类型',
    mkDefault: '默认值',
    mkRange: '范围或可选值',
    mkPurpose: '处理目的',
    mkPurposes: '处理目的',
    mkPlugin: '插件',
    mkParameters: '参数',
    mkUpdated: '更新时间',
    mkUpdatedBy: '{date}，由 {by}',
    mkCreated: '创建时间',
    mkSince: '自 {date} 起',
    mkSinceCol: '起始时间',
    mkStatus_running: '运行中',
    mkStatus_completed: '已完成',
    mkStatus_failed: '失败',
    mkStatus_draft: '草稿',
    mkStatus_simulated: '已模拟',
    mkStatus_paused: '已暂停',
    mkStatus_open: '待处理',
    mkStatus_fixed: '已修正',
    mkStatus_replayed: '已重放',
    mkNameHint: '1 到 64 个字符：a–z、0–9、- 和 _。',
    mkBadName: '“{name}”不是有效的名称：请使用 1 到 64 个 a–z、0–9、- 和 _ 字符。',

    mkImportsTitle: '数据导入',
    mkImportsIntro: '通过连接器导入的文件和推送，最新的在前，以及每次导入存储了什么、搁置了什么。',
    mkFilterStatus: '显示状态为',
    mkImport: '导入',
    mkRowsRead: '读取行数',
    mkAccepted: '已接受',
    mkRejected: '已拒绝',
    mkDeadLetters: '死信',
    mkNoImports: '暂无导入。请使用“tessera import”或 POST /v1/imports 导入文件。',
    mkImportTitle: '导入：{source}',
    mkConnector: '连接器',
    mkQuality: '质量报告',
    mkRowsRejected: '拒绝的行',
    mkRecordsRefused: '未能存储的记录',
    mkEventsInserted: '已存储事件',
    mkDuplicates: '重复',
    mkExpired: '超出保留期',
    mkSubjectsNew: '新客户',
    mkSubjectsMatched: '匹配到的客户',
    mkMerges: '合并',
    mkRejectedByReason: '按原因统计的拒绝',
    mkNoneRejected: '没有被拒绝的内容。',
    mkReason: '原因',
    mkRow: '行',
    mkField: '字段',
    mkRule: '规则',
    mkNoDeadLetters: '没有死信。',
    mkLettersIntro: '连接器拒绝的行以及无法存储的记录。运营人员可以修正死信内容；重放会重新解析修正后的行。',
    mkLettersIntroOperator: '连接器拒绝的行以及无法存储的记录。先修正死信内容，再重放。',
    mkReplay: '重放',
    mkReplayLetter: '重放死信 {id}',
    mkReplayAll: '重放所有尚未重放的死信',
    mkReplayed: '已重放 {replayed} 条，再次失败 {failed} 条，存储事件 {events} 个。',
    mkFix: '修正',
    mkFixLetter: '修正死信 {id}',
    mkFixTitle: '修正第 {row} 行',
    mkFixBinary: '此行不是 UTF-8 文本；请通过 API 的 raw_base64 修正。',
    mkHeader: '表头：{header}',
    mkRawRow: '该行内容',
    mkRecord: '记录（JSON）',
    mkSaveFix: '保存修正',
    mkFixed: '已保存。重放该死信即可存储。',
    mkNotJson: '该记录不是有效的 JSON：{message}',
    mkBackToImports: '返回导入列表',

    mkProfilesTitle: '客户档案',
    mkProfilesIntro: '按主体编号打开客户档案：可从细分成员、预览样本或导出中获得编号。',
    mkSubjectId: '主体编号',
    mkOpenProfile: '打开档案',
    mkNeedsSubject: '请输入主体编号。',
    mkByIdentity: '按身份标识查找',
    mkLookupAudited: '查找值放在请求正文中，从不出现在地址里；每次查找都会记入审计。',
    mkLookupIsOperators: '按邮箱、手机号或会员号查找客户由运营人员负责（查找本身即是个人数据，且会记入审计）。',
    mkIdentityKind: '身份标识',
    mkIdentityValue: '值',
    mkKind_email: '邮箱',
    mkKind_phone: '手机号',
    mkKind_member_id: '会员号',
    mkKind_device_id: '设备号',
    mkLookUp: '查找',
    mkProfileTitle: '客户档案',
    mkTraits: '属性',
    mkTrait: '属性',
    mkNoTraits: '没有您可以查看的属性。',
    mkWithheld: '您的角色无权查看：{names}。',
    mkActivity: '行为',
    mkEvent: '事件',
    mkFirst: '首次',
    mkLast: '最近',
    mkSums: '合计',
    mkNoEvents: '没有事件。',
    mkSegmentsIn: '所属细分',
    mkInNoSegment: '不属于任何细分。',
    mkWhy: '原因：{why}',
    mkConsents: '同意',
    mkConsent: '同意',
    mkGranted: '已同意',
    mkNotGranted: '未同意',

    mkSegmentsTitle: '人群细分',
    mkNewSegment: '新建细分',
    mkMembers: '成员数',
    mkComputed: '计算时间',
    mkComputing: '计算中…',
    mkNoSegments: '暂无细分。',
    mkSegmentTitle: '细分：{name}',
    mkMembersNow: '当前成员数',
    mkRecomputed: '{date} 计算：评估了 {evaluated} 位同意的客户，新进入 {entered} 位，离开 {left} 位。',
    mkComputingMembers: '正在计算成员…',
    mkEditRule: '编辑规则',
    mkRecompute: '立即重新计算',
    mkRecomputeStarted: '正在重新计算 {name}；完成后人数会更新。',
    mkCampaignOnSegment: '基于此细分新建活动',
    mkSizesTitle: '规模变化',
    mkSizesCaption: '{name} 每次重新计算后的成员数',
    mkSizesSummary: '{name} 成员数折线图，共 {count} 次计算：{firstDate} 为 {first}，{lastDate} 为 {last}，最多 {max}。',
    mkNoSizes: '暂无数据：第一次计算后会出现第一个点。',
    mkRecommendationsTitle: '推荐策略',
    mkNoRecommendations: '此租户没有运行中的策略。',
    mkBasis_off_policy: '基于此细分上记录的决策估计',
    mkBasis_track_record: '基于相似细分上的活动效果',
    mkBasis_none: '尚无依据',
    mkScore: '得分 {score}',
    mkUseStrategy: '用 {strategy} 新建活动',
    mkSomeMembers: '部分成员',
    mkNoMembers: '暂无成员。',

    mkBuilderTitle: '细分构建器',
    mkEditSegmentTitle: '编辑细分 {name}',
    mkBuilderIntro: '编写决定谁属于该细分的规则。输入时会根据您的数据结构进行检查，规则有效后即可看到当前符合条件的人数。',
    mkSegmentName: '细分名称',
    mkRuleHelp: '规则语言（docs/rules.md），例如',
    mkRuleEmpty: '输入规则即可检查。',
    mkChecking: '正在检查…',
    mkRuleProblems: '规则有 {count} 个问题：',
    mkAtPosition: '第 {line} 行，第 {column} 列：',
    mkShowInRule: '在规则中显示',
    mkRuleValid: '有效',
    mkCanonical: 'Tessera 的理解为',
    mkCounting: '正在统计符合条件的人数…',
    mkPreviewLabel: '当前符合条件的人数',
    mkPreviewOf: '在 {evaluated} 位被评估的客户（即同意“{purpose}”的客户）中有 {members} 位。',
    mkSample: '部分样本：',
    mkSaveSegment: '保存细分',
    mkSaveChanges: '保存更改',
    mkSegmentExists: '名为“{name}”的细分已存在：请打开它来编辑规则，或换一个名称。',
    mkSegmentSaved: '细分 {name} 已保存，正在计算成员。',
    mkNotARuleSegment: '细分 {name} 由 {plugin} 插件生成，而非规则；请通过 API 修改其参数。',

    mkCatalogTitle: '策略目录',
    mkCatalogIntro: '此租户运行的策略：可选的动作、参数、适用的处理目的，以及过往活动的效果。',
    mkNoStrategies: '此租户没有运行中的策略插件。',
    mkActionsTitle: '可选动作',
    mkNoParameters: '没有参数。',
    mkNotGrantedPurpose: '{purpose}（未授权）',
    mkFieldsRead: '读取的字段',
    mkTrackRecord: '过往效果',
    mkNoTrackRecord: '尚无已评估的活动。',
    mkCampaign: '活动',
    mkSegment: '细分',
    mkArms: '人数（实验组 / 对照组）',
    mkArmsText: '{treatment} / {control}',
    mkUpliftCol: '提升（95% 区间）',
    mkPoints: '{value} 个百分点',

    mkCampaignsTitle: '营销活动',
    mkNewCampaign: '新建活动',
    mkNoCampaigns: '暂无活动。',
    mkStrategy: '策略',
    mkHoldout: '对照组',
    mkCampaignTitle: '活动：{name}',
    mkGoal: '目标',
    mkGoalText: '首次决策后 {days} 天内的 {event}（价值：{value}）',
    mkConversionFeedback: '转化反馈',
    mkFallback: '兜底动作',
    mkNoAction: '无动作',
    mkCap: '频次上限',
    mkCapText: '{days} 天内最多 {max} 次',
    mkBudget: '预算（决策数）',
    mkSimulate: '模拟',
    mkSimulated: '活动 {name} 已模拟。',
    mkSimulating: '正在对细分进行模拟…',
    mkEnable: '启用，对照组占 {holdout}',
    mkEnabled: '活动 {name} 已运行，{holdout} 的人作为对照组。',
    mkResume: '恢复',
    mkPause: '暂停',
    mkComplete: '结束',
    mkConfirmComplete: '确定结束活动 {name} 吗？它将永久停止决策，结果会保留。',
    mkStatusChanged: '活动 {name}：{status}。',
    mkResultsTitle: '效果',
    mkNotStarted: '活动运行后会显示效果。',
    mkForecastTitle: '预测',
    mkNotSimulated: '尚未模拟：请在启用前先模拟。',
    mkHistory: '历史',
    mkSegmentSize: '细分规模',
    mkConsenting: '已同意',
    mkConsentingOf: '在查看的 {sampled} 人中有 {consenting} 人',
    mkExpectedTreated: '预计触达',
    mkExpectedControl: '预计对照组',
    mkMaxDecisions: '最多决策数',
    mkExpectedReward: '预期回报',
    mkComputedAt: '计算时间',
    mkAction: '动作',
    mkShare: '占比',
    mkEstimateTitle: '基于已记录决策的估计',
    mkEstimateHeadline: '每次决策的估计转化率：{value}（95% 区间 {lower} 至 {upper}），基于活动 {campaign} 的 {rows} 次决策重放。',
    mkEstimateCaption: '每次决策的转化率及 95% 区间',
    mkEstimateSummary: '每次决策的估计转化率 {value}，95% 区间 {lower} 至 {upper}。',
    mkRatePerDecision: '每次决策的转化率',
    mkEstimator: '估计方法',
    mkEstimate: '估计值',
    mkLower: '下限（95%）',
    mkUpper: '上限（95%）',
    mkDoublyRobust: '双重稳健',
    mkLoggedRate: '原策略自身的转化率',
    mkEffectiveSample: '有效样本量',
    mkMaxWeight: '最大权重',
    mkNoOffPolicy: '没有基于已记录决策的估计：{why}',
    mkTreatment: '实验组',
    mkControl: '对照组',
    mkArm: '分组',
    mkPeople: '人数',
    mkConversions: '转化数',
    mkConversionRate: '转化率',
    mkRevenuePerPerson: '人均收入',
    mkEvaluationGoal: '目标：每人首次决策后 {days} 天内的 {event}；对照组 {holdout}；计算于 {date}。',
    mkTooFew: '人数太少，暂无法比较：每组至少需要两人。',
    mkSrm: '样本比例不匹配：对照组占 {observed}，而非 {expected}（p = {p}）。查明原因前请勿依据这些数字行动。',
    mkUpliftHeadline: '转化率提升：{value}（95% 区间 {lower} 至 {upper}）。',
    mkUpliftCaption: '相对对照组的提升及 95% 区间',
    mkUpliftSummary: '转化率提升 {value}，95% 区间 {lower} 至 {upper}；虚线表示无效果。',
    mkUpliftAxis: '实验组 − 对照组（百分点）',
    mkAbsoluteUplift: '转化提升',
    mkReadAbove: '区间在零以上：活动不太可能没有效果。',
    mkReadBelow: '区间在零以下：活动产生了负面影响。',
    mkReadSpans: '区间跨越零：目前的数据还无法区分收益与损失。',
    mkRevenueCaption: '人均收入（实验组减对照组）及 95% 区间',
    mkRevenueSummary: '人均收入差 {value}，95% 区间 {lower} 至 {upper}。',
    mkRevenueAxis: '实验组 − 对照组（人均）',
    mkRevenueDiff: '人均收入',
    mkMeasure: '指标',
    mkRelativeUplift: '相对提升',
    mkNoRelative: '无法计算：有一组没有转化。',
    mkSampleRatio: '样本比例',
    mkSrmShort: '不匹配：见上文',
    mkSrmOk: '符合配置（对照组占 {observed}）',
    mkCuped: 'CUPED',
    mkCupedText: '方差降低 {reduction}；调整后提升 {uplift}',
    mkWindowOpen: '目标窗口尚未结束的人数',
    mkWithoutConsent: '被排除（撤回同意或已删除）',

    mkWizardTitle: '新建活动',
    mkWizardIntro: '选择策略和细分，留出对照组，先模拟，再启用。',
    mkWizardNeedsSegment: '活动需要针对一个细分：请先构建细分。',
    mkSteps: '步骤',
    mkStepDefine: '定义',
    mkStepSimulate: '模拟',
    mkStepEnable: '启用',
    mkCampaignName: '活动名称',
    mkSegmentOption: '{name}（{members} 人）',
    mkHoldoutPercent: '对照组（%）',
    mkHoldoutHint: '细分的 0 到 50%，留出以衡量提升。',
    mkStrategyParameters: '策略参数',
    mkPurposeHint: '只对同意该目的的客户做决策。',
    mkFallbackHint: '策略未做决策时使用。',
    mkGoalEvent: '目标事件',
    mkGoalValue: '价值属性',
    mkNoValue: '无（只计转化）',
    mkWindowDays: '窗口（天）',
    mkCapOptional: '频次上限（可选）',
    mkCapMax: '每人最多',
    mkCapDays: '天数',
    mkSaveDraft: '保存为草稿',
    mkDraftSaved: '草稿 {name} 已保存。',
    mkSimulateIntro: '按细分当前的情况进行模拟：触达人数、对照组、策略的预期，以及（如有）基于此细分已记录决策的估计。',
    mkCampaignExists: '名为“{name}”的活动已存在：请换一个名称。',
    mkBadHoldout: '对照组应为 0 到 50%，而不是“{value}”。',
    mkBadCap: '频次上限需要填写决策次数和天数，均为 1 或以上的整数。',
    mkParamRequired: '参数 {name} 为必填项。',
    mkParamNumber: '参数 {name} 需要数字。',
    mkParamRange: '参数 {name} 的范围是 {min} 到 {max}。',
  },
};
