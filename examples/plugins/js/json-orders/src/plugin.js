// `json-orders`: a push connector for the JSON records format of an orders
// API (a webhook body or an exported page):
//
//     { "orders": [ { "id": "o-1", "email": "ann@example.com",
//                     "member_id": "M-7", "placed_at": "2026-03-01T10:00:00Z",
//                     "total": 129.5, "currency": "EUR", "items": 3 } ] }
//
// Each order becomes a `purchase` event with `amount`, `currency` and
// `items`, keyed by the customer's email and, when present, member id
// (which links the online and the offline customer). The source id is the
// order id, so the same order is stored once however often it is sent. An
// order that cannot be read is rejected with its position and reason; the
// others are kept.

import { Identity, Manifest, Modes, ParseOutput, PluginError, Record, Rejection, Value, fieldValue, ParamSpec } from 'tessera-sdk';

function order(o, row) {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) {
    return new Rejection(row, undefined, 'an order must be a JSON object');
  }
  if (typeof o.id !== 'string' || o.id === '') return new Rejection(row, 'id', 'missing order id');
  if (typeof o.email !== 'string' || !o.email.includes('@')) {
    return new Rejection(row, 'email', `\`${o.email ?? ''}\` is not an email address`);
  }
  const at = Date.parse(o.placed_at);
  if (!Number.isFinite(at)) {
    return new Rejection(row, 'placed_at', `\`${o.placed_at ?? ''}\` is not an ISO 8601 time`);
  }
  if (typeof o.total !== 'number' || !Number.isFinite(o.total) || o.total < 0) {
    return new Rejection(row, 'total', `\`${o.total}\` is not an amount`);
  }
  const identities = [new Identity('email', o.email)];
  if (typeof o.member_id === 'string' && o.member_id !== '') {
    identities.push(new Identity('member_id', o.member_id));
  }
  const properties = [fieldValue('amount', Value.number(o.total))];
  if (typeof o.currency === 'string') properties.push(fieldValue('currency', Value.text(o.currency)));
  if (Number.isInteger(o.items)) properties.push(fieldValue('items', Value.integer(o.items)));
  return Record.event({ sourceId: `order:${o.id}`, eventType: 'purchase', at, identities, properties });
}

export default {
  describe() {
    return new Manifest('json-orders', '0.1.0', 'Orders from a JSON orders API as purchase events')
      .param(ParamSpec.text('list_key', 'The key of the list of orders in the body').default(Value.text('orders')));
  },

  modes() {
    return Modes.PUSH;
  },

  parse(params, data) {
    let body;
    try {
      body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
    } catch (e) {
      throw PluginError.input(`the body is not JSON: ${e.message}`);
    }
    const key = params.text('list_key');
    const orders = Array.isArray(body) ? body : body?.[key];
    if (!Array.isArray(orders)) throw PluginError.input(`the body has no \`${key}\` list`);
    const out = new ParseOutput();
    orders.forEach((o, i) => {
      const record = order(o, i + 1);
      if (record instanceof Rejection) out.rejections.push(record);
      else out.records.push(record);
    });
    return out;
  },
};
