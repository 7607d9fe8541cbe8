// `threshold`, the JavaScript twin of plugins/threshold (Rust): subjects
// whose `total_spend` compares to a threshold, e.g. "total_spend >= 500".
// It must behave exactly like the Rust plugin: same manifest, same results,
// same error variants and messages (tests/e2e/contract.rs).

import {
  FieldClass, Manifest, Memberships, ParamSpec, PluginError, Value, ValueKind,
} from 'tessera-sdk';

const FIELD = 'total_spend';

const OPS = {
  '>=': (v, t) => v >= t,
  '>': (v, t) => v > t,
  '<=': (v, t) => v <= t,
  '<': (v, t) => v < t,
  '==': (v, t) => v === t,
};

function op(params) {
  const name = params.get('op') === undefined ? '>=' : params.text('op');
  const holds = OPS[name];
  if (!holds) {
    throw PluginError.config(`parameter \`op\` must be one of >=, >, <=, <, ==; got \`${name}\``);
  }
  return holds;
}

export default {
  describe() {
    return new Manifest(
      'threshold',
      '0.1.0',
      'Subjects whose total spend compares to a threshold (>=, >, <=, <, ==).',
    )
      .field(FIELD, ValueKind.Number, FieldClass.Standard)
      .param(ParamSpec.number('threshold', 'The value to compare with').required())
      .param(
        ParamSpec.text('op', 'The comparison')
          .choices(['>=', '>', '<=', '<', '=='])
          .default(Value.text('>=')),
      )
      .purpose('email_marketing')
      .purpose('personalization')
      .purpose('analytics');
  },

  validate(params) {
    if (!Number.isFinite(params.number('threshold'))) {
      throw PluginError.config('parameter `threshold` must be a finite number');
    }
    op(params);
  },

  evaluate(params, batch) {
    const threshold = params.number('threshold');
    const holds = op(params);
    const spend = batch.field(FIELD);
    const values = spend.numbers();
    if (values !== undefined) {
      // Fast path: a dense number column, one tight loop.
      const member = new Uint8Array(values.length);
      for (let row = 0; row < values.length; row++) member[row] = holds(values[row], threshold) ? 1 : 0;
      return new Memberships(member);
    }
    return Memberships.fromFn(batch.rows(), (row) => {
      const v = spend.number(row);
      return v !== undefined && holds(v, threshold);
    });
  },
};
