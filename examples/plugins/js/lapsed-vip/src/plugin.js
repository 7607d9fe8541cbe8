// `lapsed-vip`: big spenders who stopped buying. A subject is a member when
// their purchases add up to at least `min_spend` and their last purchase is
// more than `days` days before the batch's "now"; the score is the number
// of days since that purchase, so a win-back campaign can start with the
// longest-lapsed.
//
// It reads no trait at all: the host computes two aggregates over the
// subject's `purchase` events (the sum of `amount` and the time of the
// last one), so the operator grants one event type and nothing personal.

import { AggregateFn, Manifest, Memberships, ParamSpec, PluginError, Value } from 'tessera-sdk';

const DAY_MS = 86_400_000;

export default {
  describe() {
    return new Manifest(
      'lapsed-vip',
      '0.1.0',
      'Subjects who spent at least a threshold but have not bought for a number of days',
    )
      .aggregate('spend', 'purchase', AggregateFn.Sum, 'amount')
      .aggregate('last_purchase', 'purchase', AggregateFn.LastAt)
      .param(
        ParamSpec.number('min_spend', 'Total purchases of a VIP')
          .range(0, 1e12)
          .default(Value.number(500)),
      )
      .param(
        ParamSpec.integer('days', 'Days without a purchase before a VIP counts as lapsed')
          .range(1, 3650)
          .default(Value.integer(90)),
      )
      .purpose('email_marketing')
      .purpose('analytics');
  },

  validate(params) {
    if (!Number.isFinite(params.number('min_spend'))) {
      throw PluginError.config('parameter `min_spend` must be a finite number');
    }
    params.integer('days');
  },

  evaluate(params, batch) {
    const minSpend = params.number('min_spend');
    const cutoff = batch.now() - params.integer('days') * DAY_MS;
    const spend = batch.aggregate('spend');
    const last = batch.aggregate('last_purchase');
    const rows = batch.rows();
    const member = new Uint8Array(rows);
    const scores = new Float64Array(rows);
    for (let row = 0; row < rows; row++) {
      const total = spend.number(row);
      const at = last.integer(row);
      if (total === undefined || at === undefined) continue;
      scores[row] = Math.max(0, Math.floor((batch.now() - at) / DAY_MS));
      member[row] = total >= minSpend && at < cutoff ? 1 : 0;
    }
    return new Memberships(member).withScores(scores);
  },
};
