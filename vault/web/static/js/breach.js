// The breach question (the privacy officer): what one account, or one token,
// touched between two moments (GET /v1/audit/touched), said in words.
// The moments are typed in the browser's own time zone, which the screen
// names, and sent as UTC; the answer's moments are shown in that zone too.
// The answer holds ids only: the children's names are asked one by one
// (GET /v1/children/{id}), and each of those looks is on the child's record.
import { call } from './api.js';
import { actionWords } from './actions.js';
import { field, h } from './dom.js';
import { errorText, lang, t } from './i18n.js';

// Names asked for at most this many children (the rest are shown by id).
const NAMES_AT_MOST = 100;

function zone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

// "UTC+01:00" for the offset the browser's zone has at that moment.
function offset(moment) {
  const minutes = -moment.getTimezoneOffset();
  const abs = Math.abs(minutes);
  const pad = (n) => String(n).padStart(2, '0');
  return `UTC${minutes < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

// A moment as a datetime-local input shows it: local wall time, to the minute.
function wallTime(moment) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${moment.getFullYear()}-${pad(moment.getMonth() + 1)}-${pad(moment.getDate())}`
    + `T${pad(moment.getHours())}:${pad(moment.getMinutes())}`;
}

// A datetime-local value ("2026-12-02T07:15" or with seconds) read as the
// browser's wall time (ECMAScript reads a date-time without offset as local).
function fromWallTime(value) {
  const moment = new Date(value);
  return Number.isNaN(moment.getTime()) ? null : moment;
}

function shown(iso) {
  if (!iso) return '–';
  const locale = lang() === 'en' ? 'en-GB' : 'nl-NL';
  return new Date(iso).toLocaleString(locale, { dateStyle: 'medium', timeStyle: 'medium' });
}

// A pasted whole token gives its id; its secret is never sent, and leaves the field.
function tokenId(input) {
  const whole = input.value.trim().match(/^kl_([0-9a-f]{16})\./);
  if (whole) input.value = whole[1];
  return input.value.trim();
}

async function childNames(ids) {
  const names = new Map();
  const asked = ids.slice(0, NAMES_AT_MOST);
  for (let start = 0; start < asked.length; start += 6) {
    await Promise.all(asked.slice(start, start + 6).map(async (id) => {
      try {
        const child = await call('GET', `/v1/children/${encodeURIComponent(id)}`);
        names.set(id, `${child.first_name} ${child.last_name}`);
      } catch (e) {
        names.set(id, errorText(e.code, '–'));
      }
    }));
  }
  return names;
}

function table(id, columns, rows) {
  return h('table', { id, class: 'stack' },
    h('thead', {}, h('tr', {}, columns.map((key) => h('th', { scope: 'col' }, t(key))))),
    h('tbody', {}, rows.map(({ data, cells }) => h('tr', { dataset: data },
      cells.map((cell, n) => h('td', { 'data-label': t(columns[n]) }, cell))))));
}

// "1 kind", "2 kinderen": the count with the word it needs.
function counted(n, one, many) {
  return n === 1 ? t(one) : t(many, { n });
}

async function answerInWords(found, asked) {
  const who = t(found.person ? 'thisAccount' : 'thisToken');
  const children = Object.entries(found.children);
  const items = Object.entries(found.items);
  const parts = [];
  if (!found.known) parts.push(h('p', { class: 'notice warn', id: 'touched-unknown' }, t('unknownId')));
  parts.push(h('p', { id: 'touched-summary' }, found.events
    ? t('touchedSummary', {
      since: shown(asked.since), until: shown(asked.until), who,
      events: counted(found.events, 'oneRequest', 'manyRequests'),
      refused: found.refused, first: shown(found.first), last: shown(found.last),
      children: counted(children.length, 'oneChild', 'manyChildren'),
      items: counted(items.length, 'oneItem', 'manyItems'),
    })
    : t('touchedNone', { since: shown(asked.since), until: shown(asked.until), who })));
  if (children.length) {
    const names = await childNames(children.map(([id]) => id));
    parts.push(h('h3', {}, t('childrenTouched')), table('touched-children', ['name', 'childId', 'times'],
      children.map(([id, n]) => ({ data: { child: id }, cells: [names.get(id) || '–', id, String(n)] }))));
    if (children.length > NAMES_AT_MOST) parts.push(h('p', { class: 'muted' }, t('namesCapped', { n: NAMES_AT_MOST })));
  }
  if (items.length) {
    parts.push(h('h3', {}, t('itemsTouched')), table('touched-items', ['type', 'itemId', 'times'],
      items.map(([id, n]) => ({ data: { item: id }, cells: [found.kinds[id] ? t(found.kinds[id]) : '–', id, String(n)] }))));
  }
  const actions = Object.entries(found.actions);
  if (actions.length) {
    parts.push(h('h3', {}, t('actionsDone')), table('touched-actions', ['what', 'times'],
      actions.map(([action, n]) => ({ data: { action }, cells: [actionWords(action), String(n)] }))));
  }
  return parts;
}

export function breachForm() {
  const person = h('input', { type: 'text', id: 'touched-person', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'touched-who-hint' });
  const token = h('input', { type: 'text', id: 'touched-token', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'touched-who-hint' });
  const now = new Date();
  const since = h('input', { type: 'datetime-local', id: 'touched-since', step: 1, required: true, 'aria-describedby': 'touched-zone', value: wallTime(new Date(now.getTime() - 24 * 3600 * 1000)) });
  const until = h('input', { type: 'datetime-local', id: 'touched-until', step: 1, required: true, 'aria-describedby': 'touched-zone', value: wallTime(new Date(now.getTime() + 60 * 1000)) });
  const result = h('div', { id: 'touched-result', 'aria-live': 'polite' });
  const problem = h('p', { class: 'notice bad', role: 'alert', id: 'touched-problem', hidden: true });
  const button = h('button', { type: 'submit' }, t('ask'));
  const form = h('form', { class: 'card', id: 'touched-form', novalidate: true },
    h('h2', {}, t('breach')),
    h('p', {}, t('breachIntro')),
    h('fieldset', {}, h('legend', {}, t('aboutWhom')),
      h('p', { class: 'muted', id: 'touched-who-hint' }, t('whoHint')),
      field(t('personId'), person), field(t('tokenId'), token)),
    h('p', { class: 'muted', id: 'touched-zone' }, t('zoneHint', { zone: zone(), offset: offset(now) })),
    field(t('since'), since), field(t('until'), until),
    problem,
    h('div', { class: 'actions' }, button),
    result);
  const refuse = (text) => {
    problem.textContent = text;
    problem.hidden = false;
    result.replaceChildren();
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    problem.hidden = true;
    const ids = { person: person.value.trim(), token: tokenId(token) };
    if (Boolean(ids.person) === Boolean(ids.token)) return refuse(t('oneOfTwo'));
    const from = fromWallTime(since.value);
    const to = fromWallTime(until.value);
    if (!from || !to || from >= to) return refuse(t('momentsNeeded'));
    const asked = { since: from.toISOString(), until: to.toISOString() };
    const query = new URLSearchParams(ids.person ? { person: ids.person } : { token: ids.token });
    query.set('since', asked.since);
    query.set('until', asked.until);
    button.disabled = true;
    result.replaceChildren(h('p', {}, t('loading')));
    try {
      const found = await call('GET', `/v1/audit/touched?${query}`);
      result.replaceChildren(...await answerInWords(found, asked));
      result.dataset.events = String(found.events);
    } catch (e) {
      // A refusal of the question itself says what to send (the API's words).
      refuse(e.code === 'invalid_input' && e.message ? `${errorText(e.code)} ${e.message}` : errorText(e.code, e.message));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}
