// Formatting of times, durations and values.
import { el } from './dom.js';
import { t } from './i18n.js';

function pad(n, w = 2) {
  return String(n).padStart(w, '0');
}

// "2024-05-01 14:03:22" in the browser's local time zone.
export function localTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso ?? '');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// <time> showing local time, with the UTC time on hover.
export function timeEl(iso) {
  if (!iso) return el('span', { class: 'muted' }, t('common.never'));
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return el('span', null, String(iso));
  return el('time', { datetime: d.toISOString(), title: 'UTC ' + d.toISOString().replace('T', ' ').replace('Z', '') },
    localTime(iso));
}

// A short duration: "12 s", "3 min", "2 h", "4 d" (translated units).
export function duration(ms) {
  const s = Math.max(0, Math.round((ms || 0) / 1000));
  if (s < 90) return t('time.seconds', { n: s });
  const m = Math.round(s / 60);
  if (m < 90) return t('time.minutes', { n: m });
  const h = Math.round(m / 60);
  if (h < 36) return t('time.hours', { n: h });
  return t('time.days', { n: Math.round(h / 24) });
}

export function b64ToBytes(b64) {
  if (b64 === null || b64 === undefined) return null;
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function bytesToB64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

// The bytes as text when they are valid UTF-8 without control characters other than
// whitespace; null for binary.
export function bytesToText(bytes) {
  if (!bytes) return '';
  let s;
  try {
    s = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (_) {
    return null;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000e-\u001f\u007f]/.test(s)) return null;
  return s;
}

export function textToBytes(s) {
  return new TextEncoder().encode(s);
}

// Pretty JSON when s parses as an object or array, else null.
export function prettyJson(s) {
  const trimmed = s.trim();
  if (!trimmed.startsWith('{') && !trimmed.startsWith('[')) return null;
  try {
    return JSON.stringify(JSON.parse(trimmed), null, 2);
  } catch (_) {
    return null;
  }
}

// Classic hex dump: offset, 16 bytes in hex, printable ASCII.
export function hexDump(bytes, max = 4096) {
  const lines = [];
  const n = Math.min(bytes.length, max);
  for (let off = 0; off < n; off += 16) {
    const row = bytes.subarray(off, Math.min(off + 16, n));
    const hex = Array.from(row, (b) => pad(b.toString(16), 2)).join(' ');
    const asc = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${pad(off.toString(16), 8)}  ${hex.padEnd(47)}  ${asc}`);
  }
  if (bytes.length > max) lines.push(t('kv.truncated', { n: bytes.length - max }));
  return lines.join('\n');
}

// A one-line preview of a base64 value for history lists.
export function preview(b64, max = 160) {
  const bytes = b64ToBytes(b64);
  if (!bytes) return '';
  const s = bytesToText(bytes);
  if (s === null) return t('kv.binary_preview', { n: bytes.length });
  const one = s.replace(/\s+/g, ' ');
  return one.length > max ? one.slice(0, max) + '…' : one;
}

// "host:port" for an address and a port; an IPv6 literal in brackets ("[::1]:2222"), so the
// port cannot be read as one more group of the address.
export function hostPort(address, port) {
  const a = String(address || '');
  return (a.includes(':') ? `[${a}]` : a) + ':' + port;
}
