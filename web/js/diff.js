// A unified diff drawn as monospace lines, each marked by what it is (file header, hunk
// header, added, removed, context). Only text nodes: a diff of a hostile file cannot
// inject markup.
import { el } from './dom.js';
import { t } from './i18n.js';

function lineClass(line) {
  if (line.startsWith('+++ ') || line.startsWith('--- ')) return 'diff-file';
  if (line.startsWith('@@')) return 'diff-hunk';
  if (line.startsWith('+')) return 'diff-add';
  if (line.startsWith('-')) return 'diff-del';
  if (line.startsWith('\\')) return 'diff-note';
  return 'diff-ctx';
}

// Returns a <pre class="diff"> for the unified diff text. A line that ended in CR (a CRLF
// file) keeps a visible mark, since line endings are part of what changes.
export function diffView(text, label) {
  const lines = String(text ?? '').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  let adds = 0;
  let dels = 0;
  const pre = el('pre', { class: 'diff', tabindex: '0', 'aria-label': label || t('plan.diff') });
  for (const raw of lines) {
    const cr = raw.endsWith('\r');
    const line = cr ? raw.slice(0, -1) : raw;
    const cls = lineClass(line);
    if (cls === 'diff-add') adds += 1;
    if (cls === 'diff-del') dels += 1;
    pre.append(el('span', { class: ['diff-line', cls] }, line,
      cr ? el('span', { class: 'diff-cr', title: t('plan.crlf') }, 'CR') : null));
  }
  pre.dataset.added = String(adds);
  pre.dataset.removed = String(dels);
  return pre;
}
