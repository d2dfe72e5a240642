// The only module that calls fetch. Same-origin credentials, the CSRF token on every
// non-GET request, JSON in and out, a 15 s timeout, one error type, and a redirect to
// the login page when the session is gone (401).

const TIMEOUT_MS = 15000;
let csrfToken = null;
const unauthorizedListeners = new Set();

export class ApiError extends Error {
  // status: HTTP status (0 for network failure/timeout); code: the server's error.code
  // or a client-side code ("network", "timeout", "aborted", "http_<status>").
  constructor(status, code, message, body) {
    super(message || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export function setCsrfToken(tok) {
  csrfToken = tok || null;
}

// fn() runs after any 401 (except from the login call itself).
export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

function buildUrl(path, query) {
  if (!query) return path;
  const parts = [];
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === false || v === '') continue;
    // A bare flag ("?keys") for true, key=value otherwise.
    parts.push(v === true ? encodeURIComponent(k)
      : encodeURIComponent(k) + '=' + encodeURIComponent(String(v)));
  }
  if (!parts.length) return path;
  return path + (path.includes('?') ? '&' : '?') + parts.join('&');
}

// Builds a URL with a query string for links (exports). Same rules as requests.
export function urlWithQuery(path, query) {
  return buildUrl(path, query);
}

async function parseBody(res) {
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  const ct = res.headers.get('content-type') || '';
  if (ct.includes('json') || /^\s*[[{"]|^\s*(true|false|null|-?\d)/.test(text)) {
    try {
      return JSON.parse(text);
    } catch (_) {
      /* not JSON after all */
    }
  }
  return text;
}

// request(method, path, {query, json, body, contentType, signal, timeout, noAuthRedirect})
// Resolves to {status, data, headers}; rejects with ApiError for non-2xx or failure.
export async function request(method, path, opts = {}) {
  const headers = { Accept: 'application/json' };
  let body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.body !== undefined) {
    headers['Content-Type'] = opts.contentType || 'application/octet-stream';
    body = opts.body;
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;

  const ac = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort();
  }, opts.timeout || TIMEOUT_MS);
  const onOuterAbort = () => ac.abort();
  if (opts.signal) {
    if (opts.signal.aborted) ac.abort();
    else opts.signal.addEventListener('abort', onOuterAbort, { once: true });
  }

  let res;
  let data;
  try {
    res = await fetch(buildUrl(path, opts.query), {
      method,
      headers,
      body,
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
      signal: ac.signal,
    });
    data = await parseBody(res);
  } catch (e) {
    if (timedOut) throw new ApiError(0, 'timeout', 'The request timed out.');
    if (ac.signal.aborted) throw new ApiError(0, 'aborted', 'The request was cancelled.');
    throw new ApiError(0, 'network', 'Network error: ' + (e && e.message ? e.message : e));
  } finally {
    clearTimeout(timer);
    if (opts.signal) opts.signal.removeEventListener('abort', onOuterAbort);
  }

  if (res.ok) return { status: res.status, data, headers: res.headers };

  let code = 'http_' + res.status;
  let message = res.statusText || ('HTTP ' + res.status);
  if (data && typeof data === 'object' && data.error && typeof data.error === 'object') {
    code = data.error.code || code;
    message = data.error.message || message;
  } else if (typeof data === 'string' && data.trim()) {
    message = data.trim().slice(0, 500);
  }
  const err = new ApiError(res.status, code, message, data);
  if (res.status === 401 && !opts.noAuthRedirect) {
    for (const fn of unauthorizedListeners) fn(err);
    if (!location.hash.startsWith('#/login')) location.hash = '#/login';
  }
  throw err;
}

// Convenience wrappers resolving to the parsed body.
export async function get(path, query, opts = {}) {
  return (await request('GET', path, { ...opts, query })).data;
}
export async function post(path, json, opts = {}) {
  return (await request('POST', path, { ...opts, json })).data;
}
export async function patch(path, json, opts = {}) {
  return (await request('PATCH', path, { ...opts, json })).data;
}
export async function del(path, query, opts = {}) {
  return (await request('DELETE', path, { ...opts, query })).data;
}
export async function put(path, body, query, opts = {}) {
  return (await request('PUT', path, { ...opts, body, query })).data;
}

// Static same-origin JSON (translation files); not an API call, no redirects.
export async function getStatic(path) {
  return (await request('GET', path, { noAuthRedirect: true })).data;
}

// Encodes a Consul KV key for a URL path, one segment at a time.
export function encodeKey(key) {
  return key.split('/').map(encodeURIComponent).join('/');
}
