// `{{name}}`: a Tessera segment rule. Subjects whose lifetime value is at
// least a threshold are members.
//
// The host hands `evaluate` a batch of profile views: one column per field
// declared in `describe` (and granted by the operator), only for subjects who
// consented to the declared purpose. Keys are pseudonymous.

import {
  FieldClass, Manifest, Memberships, ParamSpec, PluginError, Value, ValueKind,
} from 'tessera-sdk';

const FIELD = 'lifetime_value';

export default {
  describe() {
    return new Manifest('{{name}}', '0.1.0', 'Subjects whose lifetime value is at least a threshold')
      .field(FIELD, ValueKind.Number, FieldClass.Standard)
      .param(
        ParamSpec.number('threshold', 'The smallest lifetime value of a member')
          .default(Value.number(500)),
      )
      .purpose('analytics');
  },

  validate(params) {
    if (!Number.isFinite(params.number('threshold'))) {
      throw PluginError.config('parameter `threshold` must be a finite number');
    }
  },

  evaluate(params, batch) {
    const threshold = params.number('threshold');
    const value = batch.field(FIELD);
    return Memberships.fromFn(batch.rows(), (row) => {
      const v = value.number(row);
      return v !== undefined && v >= threshold;
    });
  },
};
