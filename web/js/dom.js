// Small DOM helpers. Every piece of text goes through textContent or text nodes,
// never innerHTML, so data from the API can't inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

// Properties set as DOM properties rather than attributes (form state).
const PROPS = new Set(['value', 'checked', 'selected', 'disabled', 'indeterminate', 'open']);

function apply(node, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') {
      const cls = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
      if (cls) node.setAttribute('class', cls);
    } else if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) {
        if (dv !== undefined && dv !== null) node.dataset[dk] = String(dv);
      }
    } else if (k === 'text') {
      node.textContent = String(v);
    } else if (PROPS.has(k) && !(node instanceof SVGElement)) {
      node[k] = v;
      if (v === true) node.setAttribute(k, '');
    } else if (k.startsWith('on')) {
      throw new Error('dom: use event delegation, not inline handlers (' + k + ')');
    } else {
      node.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

function append(node, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else if (c instanceof Node) node.appendChild(c);
    else node.appendChild(document.createTextNode(String(c)));
  }
}

// el('button', {class: 'btn', type: 'button'}, 'Save') → <button class="btn">Save</button>
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  apply(node, attrs);
  append(node, children);
  return node;
}

// The same for SVG elements.
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  apply(node, attrs);
  append(node, children);
  return node;
}

// Replaces all children of node.
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

// Delegated listener: fn(event, matchedElement) runs when the event target is inside
// an element matching selector within root. Returns a function that removes it.
export function on(root, type, selector, fn) {
  const h = (e) => {
    const m = e.target instanceof Element ? e.target.closest(selector) : null;
    if (m && root.contains(m)) fn(e, m);
  };
  root.addEventListener(type, h);
  return () => root.removeEventListener(type, h);
}

let idSeq = 0;
// Unique id for label/input pairs.
export function uid(prefix = 'f') {
  idSeq += 1;
  return `${prefix}-${idSeq}`;
}
