// Outbound HTTP (`tessera:plugin/http`), for connectors whose operator
// granted outbound hosts. Importing this module makes the component import
// the interface; requests to any other host fail with `unavailable`.

import { send as witSend } from 'tessera:plugin/http@0.1.0';
import { asPluginError } from './index.js';

/**
 * Sends `{ method, url, headers: [{ name, value }], body }` and returns
 * `{ status, headers, body }` (body: Uint8Array). A refusal or network
 * failure throws a `PluginError`.
 */
export function send({ method = 'GET', url, headers = [], body = new Uint8Array(0) }) {
  const data = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  try {
    return witSend({ method, url, headers, body: data });
  } catch (e) {
    throw asPluginError(e);
  }
}

/** The response body decoded as UTF-8 text. */
export function text(response) {
  return new TextDecoder().decode(response.body);
}
