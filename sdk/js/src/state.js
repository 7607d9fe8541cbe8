// Plugin-scoped state (`tessera:plugin/state`). Importing this module makes
// the component import the interface, which the operator must grant (a
// state quota); a plugin that never imports it does not ask for it.

import * as wit from 'tessera:plugin/state@0.1.0';
import { asPluginError } from './index.js';

// A Uint8Array is passed as it is: copying one element by element in the
// interpreter costs ~100 fuel a byte.
const bytes = (value) =>
  typeof value === 'string' ? new TextEncoder().encode(value)
    : value instanceof Uint8Array ? value
    : Uint8Array.from(value);

/** The stored bytes (a Uint8Array), or undefined. */
export function get(key) {
  return wit.get(key) ?? undefined;
}

/** The stored value decoded as UTF-8 text, or undefined. */
export function getText(key) {
  const value = get(key);
  return value === undefined ? undefined : new TextDecoder().decode(value);
}

/**
 * Stores bytes (or a string, as UTF-8). Past the granted quota it throws a
 * `PluginError` (`unavailable`) and leaves the old value in place.
 */
export function put(key, value) {
  try {
    wit.put(key, bytes(value));
  } catch (e) {
    throw asPluginError(e);
  }
}

/** Removes a key; removing a missing key is not an error. */
export function remove(key) {
  wit['delete'](key);
}
export { remove as delete };

/** Keys with the given prefix, in order, at most `limit` of them. */
export function keys(prefix, limit) {
  return wit.keys(prefix, limit);
}
