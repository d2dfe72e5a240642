// The live log of one job. Lines come from GET /api/jobs/{id}/log?format=json and from the
// event stream (job_log); both go through one queue keyed by line number, so a line is
// shown once and in order, and a hole (a line missed while the stream was down) is filled
// from the log API. Lines are appended in batches, one batch per animation frame, and the
// DOM keeps at most CAP lines: older ones are dropped from the top while following the
// tail ("load earlier" brings them back), and loading earlier ones past the cap hides the
// newest until "show the latest" is pressed. The view follows the tail unless the person
// scrolled up.
import * as api from './api.js';
import { el, replace } from './dom.js';
import { t } from './i18n.js';
import { localTime } from './format.js';
import { errorBox } from './ui.js';

export const CAP = 5000;
const CHUNK = 1000; // lines brought back per "load earlier"
const BATCH = 1000; // lines appended per frame

function lineEl(e) {
  const stream = String(e.stream || 'info');
  return el('div', { class: ['log-line', 'log-' + stream], dataset: { line: e.line } },
    el('span', { class: 'log-no', 'aria-hidden': 'true' }, String(e.line)),
    el('span', { class: 'log-time', title: e.time || '' }, e.time ? localTime(e.time).slice(11) : ''),
    el('span', { class: 'log-node' }, e.node && e.node !== '-' ? e.node : ''),
    el('span', { class: 'log-text' }, String(e.text ?? '')));
}

// jobId: the job; signal: aborts the fetches when the page goes away. Returns
// { node, start(logLines), push(entry), resync(), dispose() }.
export function jobLog(jobId, signal) {
  const path = '/api/jobs/' + encodeURIComponent(jobId) + '/log';
  const box = el('div', { class: 'log', role: 'log', 'aria-live': 'off', tabindex: '0', 'aria-label': t('log.title') });
  const earlierBtn = el('button', { type: 'button', class: 'btn btn-small log-earlier', hidden: true }, t('log.load_earlier'));
  const latestBtn = el('button', { type: 'button', class: 'btn btn-small log-latest', hidden: true }, t('log.show_latest'));
  const endBtn = el('button', { type: 'button', class: 'btn btn-small log-end', hidden: true }, t('log.jump_end'));
  const status = el('span', { class: 'log-status muted', 'aria-live': 'polite' });
  const errSlot = el('div');
  const node = el('section', { class: 'card job-log', 'aria-labelledby': 'log-h' },
    el('div', { class: 'panel-head' },
      el('h2', { id: 'log-h' }, t('log.title')),
      el('div', { class: 'actions' }, status,
        el('a', { class: 'btn btn-small', href: path, download: `job-${jobId}.log` }, t('log.download')))),
    earlierBtn, errSlot, box,
    el('div', { class: 'actions log-foot' }, endBtn, latestBtn));

  const pending = new Map(); // line -> entry, not yet in the DOM
  let ready = false;
  let first = 1; // line number of the first line in the DOM
  let last = 0; // line number of the last line in the DOM (first - 1 when empty)
  let serverLast = 0; // the highest line number known to exist
  let detached = false; // the newest lines are hidden after "load earlier"
  let following = true;
  let scheduled = null;
  let fetching = false;
  let again = false; // a fill was asked for while one was in flight
  let disposed = false;

  function updateStatus() {
    earlierBtn.hidden = !ready || first <= 1;
    latestBtn.hidden = !detached;
    endBtn.hidden = detached || following;
    const shown = box.childElementCount;
    status.textContent = !ready ? ''
      : shown <= 0 ? t('log.empty')
        : t('log.showing', { first, last, total: Math.max(serverLast, last) });
  }

  // One flush per animation frame; a hidden tab gets no frames, so a timer there.
  function schedule() {
    if (scheduled || disposed) return;
    scheduled = document.hidden ? { timer: setTimeout(flush, 200) } : { frame: requestAnimationFrame(flush) };
  }

  // Drops lines from the top beyond CAP, keeping what the person looks at in place.
  function trimTop() {
    const extra = box.childElementCount - CAP;
    if (extra <= 0) return;
    const before = box.scrollHeight;
    for (let i = 0; i < extra; i++) box.firstElementChild.remove();
    first = Number(box.firstElementChild.dataset.line);
    if (!following) box.scrollTop -= before - box.scrollHeight;
  }

  function flush() {
    scheduled = null;
    if (!ready || detached || disposed) return;
    const frag = document.createDocumentFragment();
    let n = 0;
    while (n < BATCH && pending.has(last + 1)) {
      frag.append(lineEl(pending.get(last + 1)));
      pending.delete(last + 1);
      last += 1;
      n += 1;
    }
    for (const k of pending.keys()) if (k <= last) pending.delete(k);
    if (n) {
      const follow = following;
      box.append(frag);
      trimTop();
      if (follow) box.scrollTop = box.scrollHeight;
    }
    if (pending.has(last + 1)) schedule();
    else if (pending.size) fill();
    updateStatus();
  }

  function take(lines) {
    for (const e of lines) {
      if (typeof e.line !== 'number') continue;
      serverLast = Math.max(serverLast, e.line);
      if (e.line > last) pending.set(e.line, e);
    }
  }

  // Fetches every line after the last one shown (a hole, a resync, the first load).
  async function fill() {
    if (disposed || detached) return;
    if (fetching) {
      again = true; // lines written since that request started may be missing from it
      return;
    }
    fetching = true;
    again = false;
    const after = last;
    try {
      const r = await api.get(path, { after, format: 'json' }, { signal });
      if (disposed) return;
      replace(errSlot);
      take(r.lines || []);
      if (typeof r.last_line === 'number') serverLast = Math.max(serverLast, r.last_line);
      // Lines the server no longer has are skipped rather than waited for forever.
      if (!pending.has(last + 1) && pending.size && last === after && !again) {
        let next = Infinity;
        for (const k of pending.keys()) next = Math.min(next, k);
        if (box.childElementCount === 0) first = next;
        last = next - 1;
      }
    } catch (err) {
      if (!disposed && err.code !== 'aborted') replace(errSlot, errorBox(err));
    } finally {
      fetching = false;
    }
    if (disposed) return;
    if (again) fill();
    schedule();
    updateStatus();
  }

  // Shows the tail: at most CAP lines before the newest known one.
  function tail(logLines) {
    replace(box);
    pending.clear();
    detached = false;
    following = true;
    serverLast = Math.max(serverLast, logLines || 0);
    last = Math.max(0, serverLast - CAP);
    first = last + 1;
    ready = true;
    updateStatus();
    fill();
  }

  async function loadEarlier() {
    if (first <= 1) return;
    earlierBtn.disabled = true;
    const from = Math.max(0, first - 1 - CHUNK);
    try {
      const r = await api.get(path, { after: from, format: 'json' }, { signal });
      if (disposed) return;
      const older = (r.lines || []).filter((e) => e.line > from && e.line < first).sort((a, b) => a.line - b.line);
      if (older.length) {
        const frag = document.createDocumentFragment();
        for (const e of older) frag.append(lineEl(e));
        const before = box.scrollHeight;
        box.prepend(frag);
        box.scrollTop += box.scrollHeight - before;
        first = older[0].line;
        if (last < first) last = older[older.length - 1].line;
      } else {
        first = 1;
      }
      // Over the cap: the newest lines leave the DOM until "show the latest".
      const extra = box.childElementCount - CAP;
      if (extra > 0) {
        for (let i = 0; i < extra; i++) box.lastElementChild.remove();
        last = Number(box.lastElementChild.dataset.line);
        detached = true;
        pending.clear();
      }
    } catch (err) {
      if (!disposed && err.code !== 'aborted') replace(errSlot, errorBox(err));
    } finally {
      earlierBtn.disabled = false;
      updateStatus();
    }
  }

  box.addEventListener('scroll', () => {
    following = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    updateStatus();
  });
  earlierBtn.addEventListener('click', loadEarlier);
  latestBtn.addEventListener('click', () => tail(serverLast));
  endBtn.addEventListener('click', () => {
    following = true;
    box.scrollTop = box.scrollHeight;
    updateStatus();
  });

  return {
    node,
    // The first load, with the job's log_lines.
    start(logLines) {
      tail(logLines);
    },
    // A job_log event for this job.
    push(e) {
      if (typeof e.line !== 'number') return;
      serverLast = Math.max(serverLast, e.line);
      if (detached) {
        updateStatus();
        return;
      }
      if (e.line > last || !ready) pending.set(e.line, e);
      if (ready) schedule();
    },
    // After a resync or a reconnect: fetch what was missed.
    resync() {
      if (ready && !detached) fill();
    },
    dispose() {
      disposed = true;
      if (scheduled && scheduled.frame) cancelAnimationFrame(scheduled.frame);
      if (scheduled && scheduled.timer) clearTimeout(scheduled.timer);
    },
  };
}
