// The JSON client of Tessera's pages: same-origin requests only, the
// session cookie sent by the browser (never read by script), the
// session's CSRF token on every request that changes data, and one error
// type carrying the API's stable error code.

/** An answer that is not a success: the API's `{error: {code, message}}`. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

export class Api {
  constructor() {
    this.csrfToken = null;
  }

  /** Sends `method url` with `body` as JSON; resolves to the parsed answer
   *  (null for 204), rejects with an ApiError. */
  async request(method, url, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (!SAFE.has(method) && this.csrfToken) headers['X-CSRF-Token'] = this.csrfToken;
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
        redirect: 'error',
      });
    } catch (cause) {
      throw new ApiError(0, 'network', String(cause && cause.message ? cause.message : cause));
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!response.ok) {
      const error = (json && json.error) || {};
      throw new ApiError(
        response.status,
        error.code || 'http_' + response.status,
        error.message || response.statusText,
        error.details,
      );
    }
    return json;
  }

  get(url) {
    return this.request('GET', url);
  }
  post(url, body) {
    return this.request('POST', url, body);
  }
  put(url, body) {
    return this.request('PUT', url, body);
  }
  patch(url, body) {
    return this.request('PATCH', url, body);
  }
  delete(url) {
    return this.request('DELETE', url);
  }
}
