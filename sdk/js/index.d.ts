// Types of tessera-sdk (src/index.js): the WIT records of
// tessera:plugin@0.1.0 as componentize-js passes them, and the helpers.
// 64-bit integers (s64, u64) arrive as BigInt; the helpers return Numbers.

export const WIT_VERSION: '0.1.0';
export const WIT_VERSION_SECTION: 'tessera:wit-version';

export type ErrorTag = 'invalid-input' | 'invalid-config' | 'unavailable' | 'internal';
export class PluginError extends Error {
  readonly tag: ErrorTag;
  readonly payload: { tag: ErrorTag; val: string };
  constructor(tag: ErrorTag, message: string);
  static input(message: string): PluginError;
  static config(message: string): PluginError;
  static unavailable(message: string): PluginError;
  static internal(message: string): PluginError;
}

export type Value =
  | { tag: 'null' }
  | { tag: 'boolean'; val: boolean }
  | { tag: 'integer'; val: bigint }
  | { tag: 'number'; val: number }
  | { tag: 'text'; val: string }
  | { tag: 'timestamp'; val: bigint }
  | { tag: 'text-list'; val: string[] };
export const Value: {
  null(): Value;
  boolean(b: boolean): Value;
  integer(i: number | bigint): Value;
  number(n: number): Value;
  text(s: string): Value;
  timestamp(ms: number | bigint): Value;
  textList(list: Iterable<string>): Value;
};

export type ValueKind = 'boolean' | 'integer' | 'number' | 'text' | 'timestamp' | 'text-list';
export const ValueKind: {
  Boolean: 'boolean'; Integer: 'integer'; Number: 'number'; Text: 'text';
  Timestamp: 'timestamp'; TextList: 'text-list';
};
export type FieldClass = 'standard' | 'sensitive' | 'pii';
export const FieldClass: { Standard: 'standard'; Sensitive: 'sensitive'; Pii: 'pii' };
export type AggregateFn = 'count' | 'sum' | 'min' | 'max' | 'first-at' | 'last-at';
export const AggregateFn: {
  Count: 'count'; Sum: 'sum'; Min: 'min'; Max: 'max'; FirstAt: 'first-at'; LastAt: 'last-at';
};
export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
export const Level: { Trace: 'trace'; Debug: 'debug'; Info: 'info'; Warn: 'warn'; Error: 'error' };
export type FeedbackKind = 'impression' | 'click' | 'conversion' | 'revenue';
export const FeedbackKind: {
  Impression: 'impression'; Click: 'click'; Conversion: 'conversion'; Revenue: 'revenue';
};

export interface FieldValue { name: string; value: Value }
export function fieldValue(name: string, value: Value): FieldValue;

export const host: {
  log(level: Level, message: string): void;
  /** The host's clock, ms since the epoch. */
  now(): number;
};

export interface ParamSpecRecord {
  name: string; kind: ValueKind; description: string; required: boolean;
  default?: Value; min?: number; max?: number; choices: string[];
}
export class ParamSpec {
  static number(name: string, description: string): ParamSpec;
  static integer(name: string, description: string): ParamSpec;
  static text(name: string, description: string): ParamSpec;
  static boolean(name: string, description: string): ParamSpec;
  static textList(name: string, description: string): ParamSpec;
  required(): this;
  default(value: Value): this;
  range(min: number, max: number): this;
  choices(choices: string[]): this;
  toRecord(): ParamSpecRecord;
}

export interface FieldSpec { name: string; kind: ValueKind; class: FieldClass }
export interface AggregateSpec {
  name: string; eventType: string; function: AggregateFn; property?: string; windowDays?: number;
}
export class Manifest {
  name: string; version: string; description: string;
  parameters: ParamSpecRecord[]; fields: FieldSpec[]; aggregates: AggregateSpec[]; purposes: string[];
  constructor(name: string, version: string, description: string);
  param(spec: ParamSpec | ParamSpecRecord): this;
  field(name: string, kind: ValueKind, cls: FieldClass): this;
  aggregate(name: string, eventType: string, fn: AggregateFn, property?: string, windowDays?: number): this;
  purpose(purpose: string): this;
}

export interface EventQuery {
  name: string; eventType: string; filter?: string; windowMs?: number | bigint; sums?: string[];
}
export class Needs {
  fields: FieldSpec[]; aggregates: AggregateSpec[]; queries: EventQuery[]; segments: string[];
  static declared(manifest: Manifest): Needs;
  field(name: string, kind: ValueKind, cls: FieldClass): this;
  aggregate(name: string, eventType: string, fn: AggregateFn, property?: string, windowDays?: number): this;
  query(query: EventQuery): this;
  segment(name: string): this;
}

export class Params implements Iterable<FieldValue> {
  constructor(values: FieldValue[]);
  get(name: string): Value | undefined;
  number(name: string): number;
  integer(name: string): number;
  boolean(name: string): boolean;
  text(name: string): string;
  textList(name: string): string[];
  [Symbol.iterator](): Iterator<FieldValue>;
}

export type ColumnData =
  | { tag: 'boolean'; val: Uint8Array }
  | { tag: 'integer'; val: BigInt64Array }
  | { tag: 'number'; val: Float64Array }
  | { tag: 'timestamp'; val: BigInt64Array }
  | { tag: 'text'; val: { dictionary: string[]; codes: Uint32Array } }
  | { tag: 'text-list'; val: { dictionary: string[]; offsets: Uint32Array; codes: Uint32Array } };
export interface Column { data: ColumnData; present: Uint8Array }
export interface ProfileBatch {
  rows: number; keys: BigUint64Array; fields: Column[]; aggregates: Column[]; now: bigint;
}

export class ColumnRef {
  isPresent(row: number): boolean;
  number(row: number): number | undefined;
  integer(row: number): number | undefined;
  boolean(row: number): boolean | undefined;
  text(row: number): string | undefined;
  textList(row: number): string[] | undefined;
  numbers(): Float64Array | undefined;
  raw(): Column;
}
export class QueryColumns {
  count(row: number): number;
  first(row: number): number | undefined;
  last(row: number): number | undefined;
  sum(property: string, row: number): number;
  isPresent(row: number): boolean;
  countColumn(): ColumnRef;
  firstColumn(): ColumnRef;
  lastColumn(): ColumnRef;
  sumColumn(property: string): ColumnRef | undefined;
}
export class Batch {
  static of(inner: ProfileBatch, manifest: Manifest): Batch;
  static planned(inner: ProfileBatch, needs: Needs): Batch;
  rows(): number;
  now(): number;
  keys(): BigUint64Array;
  field(name: string): ColumnRef;
  aggregate(name: string): ColumnRef;
  query(name: string): QueryColumns;
  segment(name: string): ColumnRef;
  raw(): ProfileBatch;
}

export class Memberships {
  member: Uint8Array; scores: Float64Array | number[];
  tiers?: { dictionary: string[]; codes: Uint32Array };
  constructor(member: Uint8Array, scores?: Float64Array, tiers?: { dictionary: string[]; codes: Uint32Array });
  static fromFn(rows: number, member: (row: number) => boolean): Memberships;
  static fromBools(bools: Iterable<boolean>): Memberships;
  withScores(scores: ArrayLike<number>): this;
  withTiers(tiers: ArrayLike<string | undefined>): this;
  isMember(row: number): boolean;
}

/** A segment rule: the default export of a segment plugin's entry module. */
export interface Segment {
  describe(): Manifest;
  validate?(params: Params): void;
  plan?(params: Params): Needs;
  evaluate(params: Params, batch: Batch): Memberships;
}

export interface Modes { push: boolean; pull: boolean; deliver: boolean }
export const Modes: {
  PUSH: Modes; PULL: Modes; DELIVER: Modes; of(...modes: Modes[]): Modes;
};
export class Identity { kind: string; value: string; constructor(kind: string, value: string) }
export class Rejection {
  row: number; field?: string; reason: string;
  constructor(row: number, field: string | undefined, reason: string);
}
export type Record =
  | { tag: 'event'; val: { sourceId: string; eventType: string; at: bigint; identities: Identity[]; properties: FieldValue[] } }
  | { tag: 'trait-update'; val: { sourceId: string; identities: Identity[]; traits: FieldValue[] } }
  | { tag: 'identity-link'; val: { sourceId: string; identities: Identity[] } };
export const Record: {
  event(e: { sourceId: string; eventType: string; at: number | bigint; identities: Identity[]; properties?: FieldValue[] }): Record;
  traitUpdate(t: { sourceId: string; identities: Identity[]; traits: FieldValue[] }): Record;
  identityLink(l: { sourceId: string; identities: Identity[] }): Record;
};
export class ParseOutput { records: Record[]; rejections: Rejection[]; constructor(records?: Record[], rejections?: Rejection[]) }
export class Page {
  records: Record[]; rejections: Rejection[]; nextCursor?: string;
  constructor(records?: Record[], rejections?: Rejection[], nextCursor?: string);
}
export interface Action { deliveryId: string; recipient: string; action: string; attributes: FieldValue[] }
export class DeliveryFailure {
  deliveryId: string; reason: string; retryable: boolean;
  constructor(deliveryId: string, reason: string, retryable: boolean);
}
export class DeliveryReport { delivered: number; failed: DeliveryFailure[]; constructor(delivered?: number, failed?: DeliveryFailure[]) }

/** A data connector: the default export of a connector plugin's entry module. */
export interface Connector {
  describe(): Manifest;
  modes(): Modes;
  validate?(params: Params): void;
  parse?(params: Params, data: Uint8Array): ParseOutput;
  pull?(params: Params, cursor: string | undefined): Page;
  deliver?(params: Params, actions: Action[]): DeliveryReport;
}

export class ActionSpec { name: string; description: string; constructor(name: string, description: string) }
export class RankedAction {
  action: number; score: number; propensity: number;
  constructor(action: number, score: number, propensity: number);
}
export class Decision { ranked: RankedAction[]; explanation: string; constructor(ranked: RankedAction[], explanation: string) }
export class ActionForecast {
  action: number; share: number; expectedReward: number;
  constructor(action: number, share: number, expectedReward: number);
}
export class Forecast {
  actions: ActionForecast[]; expectedReward: number; notes: string;
  constructor(actions: ActionForecast[], expectedReward: number, notes: string);
}
export interface Context { channel: string; at: bigint; attributes: FieldValue[] }
export interface Feedback {
  key: bigint; action: number; kind: FeedbackKind; reward: number; propensity: number; at: bigint;
}

/** A strategy model: the default export of a strategy plugin's entry module. */
export interface Strategy {
  describe(): Manifest;
  actions(): ActionSpec[];
  validate?(params: Params): void;
  /** The actions a campaign with these parameters chooses among (default `actions()`). */
  actionsFor?(params: Params): ActionSpec[];
  /** The columns the strategy reads with these parameters (default the manifest's). */
  plan?(params: Params): Needs;
  decide(params: Params, batch: Batch, context: Context): Decision[];
  observe?(params: Params, feedback: Feedback[], profiles: Batch): void;
  simulate?(params: Params, batch: Batch, context: Context): Forecast;
}

export function segmentExports(impl: Segment): object;
export function connectorExports(impl: Connector): object;
export function strategyExports(impl: Strategy, options?: { planned?: boolean }): object;
export const STRATEGY_PLANS: string;
