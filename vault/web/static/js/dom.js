import { decimal } from './i18n.js';

// Building the page from data without innerHTML: text is always text.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function main() {
  return document.getElementById('main');
}

// Replaces the main area's content and moves the focus there (screen readers
// hear the new screen's heading; keyboard users start at its top).
export function show(...children) {
  const area = main();
  area.replaceChildren(...children);
  area.focus();
}

export function announce(text) {
  document.getElementById('status').textContent = text;
}

export function field(label, input) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', {}, h('label', { for: id }, label), input);
}

// In binary units, labelled so (KiB, MiB), as the server's size messages give
// them (vault/sizes.py): a 40 MiB cap reads "40 MiB" here too, not "42 MB".
export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${decimal(n / 1024)} KiB`;
  return `${decimal(n / 1024 / 1024)} MiB`;
}

// A modal dialog that returns focus where it came from when it closes.
export function dialog(label, ...children) {
  const before = document.activeElement;
  const box = h('dialog', { 'aria-label': label }, ...children);
  box.addEventListener('close', () => {
    box.remove();
    if (before && before.focus) before.focus();
  });
  document.body.append(box);
  box.showModal();
  return box;
}
