// `next-best-offer`: one of three offers per customer, with its reason.
//
// - no purchase yet: free shipping, to get the first order;
// - lifetime value below `vip_value`: 10% off the next order;
// - a VIP: early access to the new collection (no discount needed).
//
// The rule is deterministic, so the chosen action has propensity 1 and the
// others 0. `simulate` forecasts the campaign from the shares of each
// action and a conversion rate per action given as parameters, so a
// marketer sees the expected reward before launch.

import {
  ActionForecast, ActionSpec, AggregateFn, Decision, FieldClass, Forecast, Manifest, ParamSpec,
  PluginError, RankedAction, Value, ValueKind,
} from 'tessera-sdk';

const ACTIONS = [
  new ActionSpec('free_shipping', 'Free shipping on the first order'),
  new ActionSpec('ten_percent', '10% off the next order'),
  new ActionSpec('early_access', 'Early access to the new collection'),
];
const FREE_SHIPPING = 0;
const TEN_PERCENT = 1;
const EARLY_ACCESS = 2;

// The rule for a whole batch: columns and parameters are looked up once,
// not per row (every call into the SDK costs interpreted instructions).
function chooser(params, batch) {
  const orders = batch.aggregate('orders');
  const value = batch.field('lifetime_value');
  const vip = params.number('vip_value');
  return (row) => {
    const n = orders.integer(row) ?? 0;
    const v = value.number(row);
    if (n === 0) return [FREE_SHIPPING, 'no purchase yet'];
    if (v === undefined || v < vip) return [TEN_PERCENT, `${n} orders, lifetime value below ${vip}`];
    return [EARLY_ACCESS, `a VIP: lifetime value ${v}`];
  };
}

export default {
  describe() {
    return new Manifest('next-best-offer', '0.1.0', 'Free shipping, a discount or early access, by customer value')
      .field('lifetime_value', ValueKind.Number, FieldClass.Standard)
      .aggregate('orders', 'purchase', AggregateFn.Count)
      .param(ParamSpec.number('vip_value', 'Lifetime value of a VIP').range(0, 1e12).default(Value.number(1000)))
      .param(ParamSpec.number('conversion_free_shipping', 'Expected conversion of free shipping').range(0, 1).default(Value.number(0.04)))
      .param(ParamSpec.number('conversion_ten_percent', 'Expected conversion of 10% off').range(0, 1).default(Value.number(0.06)))
      .param(ParamSpec.number('conversion_early_access', 'Expected conversion of early access').range(0, 1).default(Value.number(0.09)))
      .purpose('personalization');
  },

  actions() {
    return ACTIONS;
  },

  validate(params) {
    if (!Number.isFinite(params.number('vip_value'))) {
      throw PluginError.config('parameter `vip_value` must be a finite number');
    }
  },

  decide(params, batch) {
    const choose = chooser(params, batch);
    const out = [];
    for (let row = 0; row < batch.rows(); row++) {
      const [chosen, why] = choose(row);
      const ranked = [new RankedAction(chosen, 1, 1)];
      for (let a = 0; a < ACTIONS.length; a++) if (a !== chosen) ranked.push(new RankedAction(a, 0, 0));
      out.push(new Decision(ranked, why));
    }
    return out;
  },

  simulate(params, batch) {
    const rates = [
      params.number('conversion_free_shipping'),
      params.number('conversion_ten_percent'),
      params.number('conversion_early_access'),
    ];
    const choose = chooser(params, batch);
    const counts = [0, 0, 0];
    for (let row = 0; row < batch.rows(); row++) counts[choose(row)[0]] += 1;
    const rows = Math.max(batch.rows(), 1);
    const actions = counts.map((n, a) => new ActionForecast(a, n / rows, rates[a]));
    const expected = actions.reduce((sum, a) => sum + a.share * a.expectedReward, 0);
    return new Forecast(actions, expected, 'conversion per action from the parameters');
  },
};
