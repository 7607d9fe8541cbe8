// The Tessera plugin SDK for JavaScript: the helpers of the Rust SDK
// (sdk/rust) over the bindings componentize-js generates for a world.
// Runs inside the component; never imports Node modules.
//
// A plugin module's default export implements one world, as the Rust traits
// do: `describe` and `evaluate` (segment), `describe`, `actions` and `decide`
// (strategy), `describe`, `modes` and the modes it serves (connector); the
// other methods have the Rust SDK's defaults. `tessera-build` (build.js)
// wires it to the world's exports.

import { log as hostLog, now as hostNow } from 'tessera:plugin/host@0.1.0';

/** The WIT contract version this SDK implements (`tessera:plugin@0.1.0`). */
export const WIT_VERSION = '0.1.0';

/** The custom section the host reads the contract version from. */
export const WIT_VERSION_SECTION = 'tessera:wit-version';

// ---- errors -------------------------------------------------------------

/**
 * The one error a plugin returns (Rust: `tessera_sdk::Error`). Throw it from
 * any call that returns a result; the host receives the WIT `error`
 * variant. Any other exception becomes `internal` with its message.
 */
export class PluginError extends Error {
  constructor(tag, message) {
    super(message);
    this.name = 'PluginError';
    this.tag = tag;
    // componentize-js lowers a thrown value's `payload` as the `err` case.
    this.payload = { tag, val: String(message) };
  }
  /** The input data was wrong. */
  static input(message) { return new PluginError('invalid-input', message); }
  /** The parameters were wrong. */
  static config(message) { return new PluginError('invalid-config', message); }
  /** A dependency is unavailable; the host may retry. */
  static unavailable(message) { return new PluginError('unavailable', message); }
  /** A bug in the plugin. */
  static internal(message) { return new PluginError('internal', message); }
}

const ERROR_TAGS = ['invalid-input', 'invalid-config', 'unavailable', 'internal'];

/**
 * `e` as a `PluginError`: itself, the WIT error an import failed with (the
 * bindings throw it with its variant as `payload`), or `internal`.
 */
export function asPluginError(e) {
  if (e instanceof PluginError) return e;
  const payload = e !== null && typeof e === 'object' && Object.hasOwn(e, 'payload') ? e.payload : undefined;
  if (payload && ERROR_TAGS.includes(payload.tag)) return new PluginError(payload.tag, payload.val);
  const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return PluginError.internal(`uncaught exception: ${what}`);
}

/** How a strategy that plans but is built plain fails (tessera-build looks for it). */
export const STRATEGY_PLANS = 'tessera-sdk: this strategy plans its actions or columns';

/** Runs `f`, turning any exception into a `PluginError` (the `err` case). */
function guarded(f) {
  return (...args) => {
    try {
      return f(...args);
    } catch (e) {
      throw asPluginError(e);
    }
  };
}

// ---- values and enums ----------------------------------------------------

const int64 = (n, what) => {
  if (typeof n === 'bigint') return BigInt.asIntN(64, n);
  if (!Number.isInteger(n)) throw new TypeError(`${what} must be an integer, got ${n}`);
  return BigInt(n);
};

/** One typed value: parameters, context attributes, event properties. */
export const Value = Object.freeze({
  null: () => ({ tag: 'null' }),
  boolean: (b) => ({ tag: 'boolean', val: Boolean(b) }),
  integer: (i) => ({ tag: 'integer', val: int64(i, 'an integer value') }),
  number: (n) => ({ tag: 'number', val: Number(n) }),
  text: (s) => ({ tag: 'text', val: String(s) }),
  timestamp: (ms) => ({ tag: 'timestamp', val: int64(ms, 'a timestamp') }),
  textList: (list) => ({ tag: 'text-list', val: Array.from(list, String) }),
});

export const ValueKind = Object.freeze({
  Boolean: 'boolean', Integer: 'integer', Number: 'number', Text: 'text',
  Timestamp: 'timestamp', TextList: 'text-list',
});
export const FieldClass = Object.freeze({ Standard: 'standard', Sensitive: 'sensitive', Pii: 'pii' });
export const AggregateFn = Object.freeze({
  Count: 'count', Sum: 'sum', Min: 'min', Max: 'max', FirstAt: 'first-at', LastAt: 'last-at',
});
export const Level = Object.freeze({ Trace: 'trace', Debug: 'debug', Info: 'info', Warn: 'warn', Error: 'error' });
export const FeedbackKind = Object.freeze({
  Impression: 'impression', Click: 'click', Conversion: 'conversion', Revenue: 'revenue',
});

/** A named value (a parameter, a context attribute, a property). */
export const fieldValue = (name, value) => ({ name: String(name), value });

// ---- host ------------------------------------------------------------------

/** Logging and the host clock (always available). */
export const host = Object.freeze({
  /**
   * Writes a line to the host log. The host keeps a per-call budget of lines
   * and drops the rest, so log what helps an operator, not every row.
   */
  log(level, message) { hostLog(level, String(message)); },
  /** The host's clock, in ms since the epoch (a Number). */
  now() { return Number(hostNow()); },
});

// ---- manifests and plans -------------------------------------------------

const fieldSpec = (name, kind, cls) => ({ name, kind, class: cls });
const aggregateSpec = (name, eventType, fn, property, windowDays) => ({
  name, eventType, function: fn,
  property: property ?? undefined,
  windowDays: windowDays ?? undefined,
});

/** What a plugin tells the host about itself (`describe`). */
export class Manifest {
  constructor(name, version, description) {
    this.name = name;
    this.version = version;
    this.description = description;
    this.parameters = [];
    this.fields = [];
    this.aggregates = [];
    this.purposes = [];
  }
  /** Declares a parameter. */
  param(spec) {
    this.parameters.push(spec instanceof ParamSpec ? spec.toRecord() : spec);
    return this;
  }
  /** Declares a profile field; its column arrives in this order. */
  field(name, kind, cls) { this.fields.push(fieldSpec(name, kind, cls)); return this; }
  /** Declares an event aggregate; its column arrives in this order. */
  aggregate(name, eventType, fn, property, windowDays) {
    this.aggregates.push(aggregateSpec(name, eventType, fn, property, windowDays));
    return this;
  }
  /** Declares a processing purpose. */
  purpose(purpose) { this.purposes.push(purpose); return this; }
}

/** The columns a segment or strategy reads for one set of parameters. */
export class Needs {
  constructor() {
    this.fields = [];
    this.aggregates = [];
    this.queries = [];
    this.segments = [];
  }
  /** The manifest's fields and aggregates: what a plugin that does not plan is sent. */
  static declared(manifest) {
    const needs = new Needs();
    needs.fields = manifest.fields.slice();
    needs.aggregates = manifest.aggregates.slice();
    return needs;
  }
  field(name, kind, cls) { this.fields.push(fieldSpec(name, kind, cls)); return this; }
  aggregate(name, eventType, fn, property, windowDays) {
    this.aggregates.push(aggregateSpec(name, eventType, fn, property, windowDays));
    return this;
  }
  /**
   * Plans an event query `{ name, eventType, filter?, windowMs?, sums? }`;
   * read it back with `Batch.query(name)`.
   */
  query({ name, eventType, filter, windowMs, sums = [] }) {
    this.queries.push({
      name, eventType, filter: filter ?? undefined,
      windowMs: windowMs == null ? undefined : int64(windowMs, 'windowMs'),
      sums: sums.slice(),
    });
    return this;
  }
  /** Plans another segment's membership (a boolean column after the fields). */
  segment(name) { this.segments.push(name); return this; }
}

/**
 * One parameter a plugin accepts, as a builder: `ParamSpec.number("threshold",
 * "…").required()`. `Manifest.param` turns it into the WIT record.
 */
export class ParamSpec {
  #spec;
  constructor(kind, name, description) {
    this.#spec = {
      name, kind, description, required: false,
      default: undefined, min: undefined, max: undefined, choices: [],
    };
  }
  static number(name, description) { return new ParamSpec(ValueKind.Number, name, description); }
  static integer(name, description) { return new ParamSpec(ValueKind.Integer, name, description); }
  static text(name, description) { return new ParamSpec(ValueKind.Text, name, description); }
  static boolean(name, description) { return new ParamSpec(ValueKind.Boolean, name, description); }
  static textList(name, description) { return new ParamSpec(ValueKind.TextList, name, description); }
  /** The parameter must be given. */
  required() { this.#spec.required = true; return this; }
  /** The value used when the parameter is absent (a `Value`). */
  default(value) { this.#spec.default = value; return this; }
  /** Inclusive bounds for a numeric parameter. */
  range(min, max) { this.#spec.min = min; this.#spec.max = max; return this; }
  /** The only values a text parameter may take. */
  choices(choices) { this.#spec.choices = choices.slice(); return this; }
  /** The WIT `param-spec` record. */
  toRecord() { return { ...this.#spec, choices: this.#spec.choices.slice() }; }
}

// ---- parameters ------------------------------------------------------------

/** The parameters of one call, by name (checked and defaulted by the host). */
export class Params {
  constructor(values) { this.values = values ?? []; }
  /** The raw `Value` of a parameter, if present and not null. */
  get(name) {
    const p = this.values.find((v) => v.name === name);
    return p && p.value.tag !== 'null' ? p.value : undefined;
  }
  #required(name, expected, pick) {
    const value = this.get(name);
    if (value === undefined) throw PluginError.config(`parameter \`${name}\` is required`);
    const out = pick(value);
    if (out === undefined) throw PluginError.config(`parameter \`${name}\` must be ${expected}`);
    return out;
  }
  /** A number (integers are widened). */
  number(name) {
    return this.#required(name, 'a number', (v) =>
      v.tag === 'number' ? v.val : v.tag === 'integer' ? Number(v.val) : undefined);
  }
  /** An integer, as a Number (exact up to 2^53). */
  integer(name) {
    return this.#required(name, 'an integer', (v) => (v.tag === 'integer' ? Number(v.val) : undefined));
  }
  boolean(name) {
    return this.#required(name, 'a boolean', (v) => (v.tag === 'boolean' ? v.val : undefined));
  }
  text(name) {
    return this.#required(name, 'a text', (v) => (v.tag === 'text' ? v.val : undefined));
  }
  textList(name) {
    return this.#required(name, 'a list of texts', (v) => (v.tag === 'text-list' ? v.val : undefined));
  }
  /** Every parameter, in the order the host sent them. */
  [Symbol.iterator]() { return this.values[Symbol.iterator](); }
}

// ---- batches ---------------------------------------------------------------

/** One column of a batch, checked to have one entry per row. */
export class ColumnRef {
  constructor(column, rows, name) {
    const { tag, val } = column.data;
    const len = tag === 'text' ? val.codes.length
      : tag === 'text-list' ? Math.max(val.offsets.length - 1, 0)
      : val.length;
    if (len !== rows || !(column.present.length === 0 || column.present.length === rows)) {
      throw PluginError.input(`column \`${name}\` has ${len} values for ${rows} rows`);
    }
    this.column = column;
  }
  /** Whether the row has a value. */
  isPresent(row) {
    const present = this.column.present;
    return present.length === 0 || present[row] !== 0;
  }
  /** The row's value as a number (integers, timestamps and booleans are widened). */
  number(row) {
    if (!this.isPresent(row)) return undefined;
    const { tag, val } = this.column.data;
    switch (tag) {
      case 'number': return val[row];
      case 'integer': case 'timestamp': return Number(val[row]);
      case 'boolean': return val[row] !== 0 ? 1 : 0;
      default: return undefined;
    }
  }
  /** The row's value as an integer or timestamp (a Number). */
  integer(row) {
    if (!this.isPresent(row)) return undefined;
    const { tag, val } = this.column.data;
    return tag === 'integer' || tag === 'timestamp' ? Number(val[row]) : undefined;
  }
  boolean(row) {
    if (!this.isPresent(row)) return undefined;
    const { tag, val } = this.column.data;
    return tag === 'boolean' ? val[row] !== 0 : undefined;
  }
  text(row) {
    if (!this.isPresent(row)) return undefined;
    const { tag, val } = this.column.data;
    return tag === 'text' ? val.dictionary[val.codes[row]] : undefined;
  }
  /** The row's list of texts. */
  textList(row) {
    if (!this.isPresent(row)) return undefined;
    const { tag, val } = this.column.data;
    if (tag !== 'text-list') return undefined;
    const out = [];
    for (let i = val.offsets[row]; i < val.offsets[row + 1] && i < val.codes.length; i++) {
      const s = val.dictionary[val.codes[i]];
      if (s !== undefined) out.push(s);
    }
    return out;
  }
  /** The whole column as a Float64Array, when it is a number column with no gaps. */
  numbers() {
    const { tag, val } = this.column.data;
    return tag === 'number' && this.column.present.length === 0 ? val : undefined;
  }
  /** The raw column (`{ data: { tag, val }, present }`). */
  raw() { return this.column; }
}

/** The columns of one planned event query (`Batch.query`). */
export class QueryColumns {
  constructor(count, first, last, sums) {
    this._count = count; this._first = first; this._last = last; this._sums = sums;
  }
  count(row) { const n = this._count.integer(row); return n === undefined || n < 0 ? 0 : n; }
  first(row) { return this._first.integer(row); }
  last(row) { return this._last.integer(row); }
  sum(property, row) {
    const c = this._sums.get(property);
    return (c && c.number(row)) ?? 0;
  }
  isPresent(row) { return this._count.isPresent(row); }
  countColumn() { return this._count; }
  firstColumn() { return this._first; }
  lastColumn() { return this._last; }
  sumColumn(property) { return this._sums.get(property); }
}

/** A batch of profile views with its columns addressable by name. */
export class Batch {
  constructor(inner, names) {
    this.inner = inner;
    this.fieldNames = names.fields.map((f) => f.name);
    this.aggregateNames = names.aggregates.map((a) => a.name);
    this.queries = (names.queries ?? []).map((q) => [q.name, q.sums]);
    this.segmentNames = (names.segments ?? []).slice();
  }
  /** Wraps a batch whose columns are the manifest's. */
  static of(inner, manifest) { return new Batch(inner, manifest); }
  /** Wraps a batch whose columns were planned (`Needs`). */
  static planned(inner, needs) { return new Batch(inner, needs); }
  /** Number of rows (subjects). */
  rows() { return this.inner.rows; }
  /** "Now" for this batch, in ms since the epoch (a Number). */
  now() { return Number(this.inner.now); }
  /** The pseudonymous key of each row (a BigUint64Array). */
  keys() { return this.inner.keys; }
  #column(columns, index, name) {
    const column = columns[index];
    if (column === undefined) throw PluginError.input(`the host sent no column for \`${name}\``);
    return new ColumnRef(column, this.rows(), name);
  }
  /** The column of a declared (or planned) field. */
  field(name) {
    const i = this.fieldNames.indexOf(name);
    if (i < 0) {
      throw PluginError.internal(
        `field \`${name}\` is not declared in the manifest or planned for these parameters`);
    }
    return this.#column(this.inner.fields, i, name);
  }
  /** The column of a declared (or planned) event aggregate. */
  aggregate(name) {
    const i = this.aggregateNames.indexOf(name);
    if (i < 0) {
      throw PluginError.internal(
        `aggregate \`${name}\` is not declared in the manifest or planned for these parameters`);
    }
    return this.#column(this.inner.aggregates, i, name);
  }
  /** The columns of a planned event query: count, first, last, then one per sum. */
  query(name) {
    let index = this.aggregateNames.length;
    let sums;
    for (const [q, s] of this.queries) {
      if (q === name) { sums = s; break; }
      index += 3 + s.length;
    }
    if (sums === undefined) throw PluginError.internal(`query \`${name}\` is not planned for these parameters`);
    const at = (offset, what) => this.#column(this.inner.aggregates, index + offset, `${name} (${what})`);
    const bySum = new Map(sums.map((p, i) => [p, at(3 + i, p)]));
    return new QueryColumns(at(0, 'count'), at(1, 'first'), at(2, 'last'), bySum);
  }
  /** The membership column (boolean) of another planned segment. */
  segment(name) {
    const i = this.segmentNames.indexOf(name);
    if (i < 0) throw PluginError.internal(`segment \`${name}\` is not planned for these parameters`);
    return this.#column(this.inner.fields, this.fieldNames.length + i, `segment ${name}`);
  }
  /** The raw batch, for plugins that read columns by position. */
  raw() { return this.inner; }
}

// ---- segment ---------------------------------------------------------------

/** One result per input row: member bytes, optional scores and tiers. */
export class Memberships {
  constructor(member, scores = new Float64Array(0), tiers = undefined) {
    this.member = member;
    this.scores = scores;
    this.tiers = tiers;
  }
  /** Membership computed row by row. */
  static fromFn(rows, member) {
    const out = new Uint8Array(rows);
    for (let row = 0; row < rows; row++) out[row] = member(row) ? 1 : 0;
    return new Memberships(out);
  }
  /** Membership from one boolean per row. */
  static fromBools(bools) { return new Memberships(Uint8Array.from(bools, (b) => (b ? 1 : 0))); }
  /** Attaches one score per row. */
  withScores(scores) {
    this.scores = scores instanceof Float64Array ? scores : Float64Array.from(scores);
    return this;
  }
  /** Attaches a named tier per row: `tiers[row]` is a string (or undefined: none). */
  withTiers(tiers) {
    const dictionary = [];
    const index = new Map();
    const codes = new Uint32Array(tiers.length);
    tiers.forEach((t, row) => {
      const name = String(t ?? '');
      if (!index.has(name)) { index.set(name, dictionary.length); dictionary.push(name); }
      codes[row] = index.get(name);
    });
    this.tiers = { dictionary, codes };
    return this;
  }
  isMember(row) { return this.member[row] === 1; }
}

/** The exports of the segment world (and `tessera:plan/segment-plan`) for `impl`. */
export function segmentExports(impl) {
  const plan = (params) =>
    impl.plan ? impl.plan(params) : Needs.declared(impl.describe());
  return {
    describe: () => impl.describe(),
    validate: guarded((params) => { impl.validate?.(new Params(params)); }),
    evaluate: guarded((params, batch) => {
      const p = new Params(params);
      const b = Batch.planned(batch, plan(p));
      const out = impl.evaluate(p, b);
      if (out.member.length !== b.rows()) {
        throw PluginError.internal(
          `evaluate returned ${out.member.length} memberships for ${b.rows()} rows`);
      }
      return out;
    }),
    segmentPlan: { plan: guarded((params) => plan(new Params(params))) },
  };
}

// ---- connector -------------------------------------------------------------

/** Which of parse / pull / deliver a connector serves. */
export const Modes = Object.freeze({
  PUSH: Object.freeze({ push: true, pull: false, deliver: false }),
  PULL: Object.freeze({ push: false, pull: true, deliver: false }),
  DELIVER: Object.freeze({ push: false, pull: false, deliver: true }),
  /** The union of modes, e.g. `Modes.of(Modes.PUSH, Modes.PULL)`. */
  of: (...modes) => ({
    push: modes.some((m) => m.push), pull: modes.some((m) => m.pull),
    deliver: modes.some((m) => m.deliver),
  }),
});

/** One identifier of a person ("email", "phone", "member_id", …). */
export class Identity {
  constructor(kind, value) { this.kind = kind; this.value = value; }
}

/** An input row that could not be turned into a record. */
export class Rejection {
  constructor(row, field, reason) { this.row = row; this.field = field ?? undefined; this.reason = reason; }
}

/** The records a connector produces (the WIT `record` variant). */
export const Record = Object.freeze({
  /** `{ sourceId, eventType, at, identities, properties }` (`at` in ms). */
  event: ({ sourceId, eventType, at, identities, properties = [] }) => ({
    tag: 'event',
    val: { sourceId, eventType, at: int64(at, 'an event time'), identities, properties },
  }),
  /** `{ sourceId, identities, traits }`. */
  traitUpdate: ({ sourceId, identities, traits }) => ({ tag: 'trait-update', val: { sourceId, identities, traits } }),
  /** `{ sourceId, identities }`. */
  identityLink: ({ sourceId, identities }) => ({ tag: 'identity-link', val: { sourceId, identities } }),
});

/** What `parse` returns. */
export class ParseOutput {
  constructor(records = [], rejections = []) { this.records = records; this.rejections = rejections; }
}

/** What `pull` returns; `nextCursor` undefined when the source is exhausted. */
export class Page {
  constructor(records = [], rejections = [], nextCursor = undefined) {
    this.records = records; this.rejections = rejections; this.nextCursor = nextCursor;
  }
}

/** What `deliver` returns. */
export class DeliveryReport {
  constructor(delivered = 0, failed = []) { this.delivered = delivered; this.failed = failed; }
}

/** A delivery that failed: `{ deliveryId, reason, retryable }`. */
export class DeliveryFailure {
  constructor(deliveryId, reason, retryable) {
    this.deliveryId = deliveryId; this.reason = reason; this.retryable = Boolean(retryable);
  }
}

/** The exports of the connector world for `impl`. */
export function connectorExports(impl) {
  const unsupported = (what) => () => { throw PluginError.config(`this connector does not ${what}`); };
  const parse = impl.parse ?? unsupported('parse pushed data');
  const pull = impl.pull ?? unsupported('pull');
  const deliver = impl.deliver ?? unsupported('deliver');
  return {
    describe: () => impl.describe(),
    supports: () => impl.modes(),
    validate: guarded((params) => { impl.validate?.(new Params(params)); }),
    parse: guarded((params, data) => parse(new Params(params), data)),
    pull: guarded((params, cursor) => pull(new Params(params), cursor ?? undefined)),
    deliver: guarded((params, actions) => deliver(new Params(params), actions)),
  };
}

// ---- strategy --------------------------------------------------------------

/** An action with its score and the probability it was chosen with. */
export class RankedAction {
  constructor(action, score, propensity) { this.action = action; this.score = score; this.propensity = propensity; }
}

/** The decision for one row: actions best first, and why. */
export class Decision {
  constructor(ranked, explanation) { this.ranked = ranked; this.explanation = explanation; }
}

/** One action a strategy can choose. */
export class ActionSpec {
  constructor(name, description) { this.name = name; this.description = description; }
}

/** What a strategy expects over a batch: `{ actions, expectedReward, notes }`. */
export class Forecast {
  constructor(actions, expectedReward, notes) {
    this.actions = actions; this.expectedReward = expectedReward; this.notes = notes;
  }
}

/** One action's share and expected reward in a forecast. */
export class ActionForecast {
  constructor(action, share, expectedReward) { this.action = action; this.share = share; this.expectedReward = expectedReward; }
}

/**
 * The exports of the strategy world for `impl`; with `{ planned: true }`
 * also `tessera:strategy/campaign-plan` (`campaignPlan`), whose `actions`
 * are `impl.actionsFor(params)` (default `impl.actions()`) and whose `plan`
 * is `impl.plan(params)` (default the manifest's fields and aggregates).
 * `tessera-build` builds a strategy that defines `actionsFor` or `plan` for
 * `tessera:strategy/planned-strategy` and passes `planned`; a plain build of
 * one that plans would silently ignore its plan, so it is refused.
 */
export function strategyExports(impl, { planned = false } = {}) {
  // Runs when the component is built (componentize-js evaluates the module).
  const plans = ['actionsFor', 'plan'].filter((method) => impl[method] !== undefined);
  if (!planned && plans.length > 0) {
    throw new Error(
      `${STRATEGY_PLANS}: it defines \`${plans[0]}\`, but it is being built for the plain ` +
        'tessera:plugin/strategy world (tessera-build chooses tessera:strategy/planned-strategy ' +
        'for such a strategy)');
  }
  const actionsFor = (params) => (impl.actionsFor ? impl.actionsFor(params) : impl.actions());
  const plan = (params) => (impl.plan ? impl.plan(params) : Needs.declared(impl.describe()));
  const simulate = impl.simulate ?? ((params, batch, context) => {
    const decisions = impl.decide(params, batch, context);
    const shares = new Array(actionsFor(params).length).fill(0);
    for (const d of decisions) {
      const top = d.ranked[0];
      if (top && top.action < shares.length) shares[top.action] += 1;
    }
    const rows = Math.max(decisions.length, 1);
    return new Forecast(
      shares.map((count, action) => new ActionForecast(action, count / rows, 0)),
      0,
      'shares from decide(); this strategy has no reward model');
  });
  const world = {
    describe: () => impl.describe(),
    actions: () => impl.actions(),
    validate: guarded((params) => { impl.validate?.(new Params(params)); }),
    decide: guarded((params, batch, context) => {
      const p = new Params(params);
      const b = Batch.planned(batch, plan(p));
      const out = impl.decide(p, b, context);
      if (out.length !== b.rows()) {
        throw PluginError.internal(`decide returned ${out.length} decisions for ${b.rows()} rows`);
      }
      return out;
    }),
    observe: guarded((params, feedback) => {
      const p = new Params(params);
      const profiles = Batch.planned(feedback.profiles, plan(p));
      impl.observe?.(p, feedback.items, profiles);
    }),
    simulate: guarded((params, batch, context) => {
      const p = new Params(params);
      return simulate(p, Batch.planned(batch, plan(p)), context);
    }),
  };
  if (planned) {
    world.campaignPlan = {
      actions: guarded((params) => actionsFor(new Params(params))),
      plan: guarded((params) => plan(new Params(params))),
    };
  }
  return world;
}
