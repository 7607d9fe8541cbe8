// `{{name}}`: a Tessera strategy. Offers a discount to customers whose
// lifetime value is below a threshold (to win them back) and nothing to the
// others, and says why.
//
// Decisions rank every action with the probability it was chosen with (its
// propensity): this rule is deterministic, so the chosen action has 1.0.

import {
  ActionSpec, Decision, FieldClass, Manifest, ParamSpec, RankedAction, Value, ValueKind,
} from 'tessera-sdk';

const FIELD = 'lifetime_value';
const DISCOUNT = 0;
const NO_OFFER = 1;

export default {
  describe() {
    return new Manifest(
      '{{name}}',
      '0.1.0',
      'A discount for customers below a lifetime value, nothing for the others',
    )
      .field(FIELD, ValueKind.Number, FieldClass.Standard)
      .param(
        ParamSpec.number('threshold', 'Below this lifetime value, offer the discount')
          .default(Value.number(100)),
      )
      .purpose('personalization');
  },

  actions() {
    return [
      new ActionSpec('discount', '10% off the next purchase'),
      new ActionSpec('no_offer', 'No offer'),
    ];
  },

  decide(params, batch, _context) {
    const threshold = params.number('threshold');
    const value = batch.field(FIELD);
    const decisions = [];
    for (let row = 0; row < batch.rows(); row++) {
      const v = value.number(row);
      const low = v === undefined || v < threshold;
      const [first, second] = low ? [DISCOUNT, NO_OFFER] : [NO_OFFER, DISCOUNT];
      decisions.push(new Decision(
        [new RankedAction(first, 1, 1), new RankedAction(second, 0, 0)],
        low ? `lifetime value below ${threshold} (or unknown)` : `lifetime value at least ${threshold}`,
      ));
    }
    return decisions;
  },
};
