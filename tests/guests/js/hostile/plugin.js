// A hostile JavaScript segment: its `attack` parameter picks what
// `evaluate` does wrong, so that one component (a JavaScript component
// takes seconds to build and compile) covers every attack that applies to
// JavaScript. The host must stop each with the same limits as a Rust guest
// and then serve the next honest call (tests/e2e/hostile.rs).

import { host, Level, Manifest, Memberships, ParamSpec, Value } from 'tessera-sdk';
import * as state from 'tessera-sdk/state';

function recurse(n) {
  return recurse(n + 1) + 1;
}

export default {
  describe() {
    return new Manifest('js-hostile', '0.1.0', 'Misbehaves on purpose')
      .param(ParamSpec.text('attack', 'What to do wrong').default(Value.text('none')));
  },

  evaluate(params, batch) {
    switch (params.text('attack')) {
      case 'loop':
        for (;;) {}
      case 'memory': {
        const hoard = [];
        for (;;) hoard.push(new Float64Array(1 << 20));
      }
      case 'recursion':
        return recurse(0);
      case 'throw':
        throw new TypeError('a bug in the plugin');
      case 'log':
        for (;;) host.log(Level.Info, 'flood');
      case 'quota':
        // Past the granted quota: the host's `unavailable` error reaches
        // the caller as it is.
        state.put('big', new Uint8Array(2 << 20));
        return Memberships.fromFn(batch.rows(), () => true);
      default:
        return Memberships.fromFn(batch.rows(), () => false);
    }
  },
};
