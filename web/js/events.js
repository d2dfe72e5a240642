// One shared EventSource on /api/events. Views subscribe by event name; the stream
// reconnects by itself (the browser retries), and when the browser gives up (the
// connection was refused or answered with an error) we reopen it with backoff.

const URL_EVENTS = '/api/events';
let es = null;
let wanted = false;
let retryTimer = null;
let backoff = 1000;
let status = 'off'; // off | connecting | live | reconnecting
const handlers = new Map(); // name -> Set(fn)
const attached = new Set(); // names with a listener on the current EventSource
const lastData = new Map(); // name -> last payload
const statusListeners = new Set();
let beforeReconnect = null;

function setStatus(s) {
  if (s === status) return;
  status = s;
  for (const fn of statusListeners) fn(s);
}

function dispatch(name, data) {
  lastData.set(name, data);
  const set = handlers.get(name);
  if (!set) return;
  for (const fn of Array.from(set)) {
    try {
      fn(data);
    } catch (e) {
      // A broken view must not stop the others; report it like an uncaught error.
      setTimeout(() => {
        throw e;
      });
    }
  }
}

function attach(name) {
  if (!es || attached.has(name)) return;
  attached.add(name);
  es.addEventListener(name, (ev) => {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch (_) {
      return; // a malformed frame is dropped, the stream goes on
    }
    dispatch(name, data);
  });
}

function open() {
  clearTimeout(retryTimer);
  retryTimer = null;
  if (!wanted) return;
  setStatus(status === 'off' ? 'connecting' : 'reconnecting');
  es = new EventSource(URL_EVENTS, { withCredentials: true });
  attached.clear();
  for (const name of handlers.keys()) attach(name);
  es.addEventListener('open', () => {
    backoff = 1000;
    setStatus('live');
  });
  es.addEventListener('error', () => {
    if (!es) return;
    if (es.readyState === EventSource.CLOSED) {
      es = null;
      setStatus('reconnecting');
      retryTimer = setTimeout(async () => {
        // Check the session first: a 401 there sends the person to the login page.
        if (beforeReconnect) {
          try {
            await beforeReconnect();
          } catch (_) {
            /* the hook handles its own errors */
          }
        }
        open();
      }, backoff);
      backoff = Math.min(backoff * 2, 30000);
    } else {
      setStatus('reconnecting');
    }
  });
}

// Starts the stream (after login). hook() runs before each manual reconnect.
export function startEvents(hook) {
  beforeReconnect = hook || null;
  if (wanted) return;
  wanted = true;
  status = 'off';
  open();
}

// Stops the stream (logout) and forgets cached payloads.
export function stopEvents() {
  wanted = false;
  clearTimeout(retryTimer);
  if (es) es.close();
  es = null;
  attached.clear();
  lastData.clear();
  setStatus('off');
}

// subscribe('cluster', fn) → unsubscribe function.
export function subscribe(name, fn) {
  if (!handlers.has(name)) handlers.set(name, new Set());
  handlers.get(name).add(fn);
  attach(name);
  return () => {
    const set = handlers.get(name);
    if (set) set.delete(fn);
  };
}

// Hands a payload fetched by GET to the subscribers, as if it came from the stream.
export function publish(name, data) {
  dispatch(name, data);
}

export function lastEvent(name) {
  return lastData.get(name);
}

export function connectionStatus() {
  return status;
}

export function onStatus(fn) {
  statusListeners.add(fn);
  return () => statusListeners.delete(fn);
}
