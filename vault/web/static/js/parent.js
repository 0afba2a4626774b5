// A parent's screens: their children, the timeline, the viewer and player,
// consents, the export, who saw the child, reports and requests.
import { call, downloadHtml, link, links } from './api.js';
import { announce, dialog, field, formatBytes, h, show } from './dom.js';
import { date, errorText, moment, t, today } from './i18n.js';
import { fetchWhole, save } from './download.js';
import { VideoPlayer } from './player.js';
import { actionWords, roleWords } from './actions.js';

const PAGE = 12;

function childOf(me, id) {
  return me.children.find((child) => child.id === id);
}

function childNav(child, current) {
  const base = `#/child/${child.id}`;
  const entries = [['', t('timeline')], ['/consents', t('consents')], ['/export', t('export')], ['/access', t('accessLog')]];
  return h('nav', { class: 'actions', 'aria-label': child.first_name },
    entries.map(([tail, label]) => h('a', { class: tail === current ? 'button' : 'button secondary', href: base + tail, 'aria-current': tail === current ? 'page' : null }, label)));
}

let signedIn = null;

export async function screen(me, parts) {
  signedIn = me;
  if (parts[0] === 'requests') return requests(me);
  if (parts[0] !== 'child' || !parts[1]) return home(me);
  const child = childOf(me, parts[1]);
  if (!child) return home(me);
  const view = parts[2] || '';
  if (view === 'consents') return consents(child);
  if (view === 'export') return exportScreen(child);
  if (view === 'access') return accessLog(child);
  return timeline(child);
}

function home(me) {
  if (!me.children.length) return show(h('h1', {}, t('children')), h('p', {}, t('noChildren')));
  const cards = me.children.map((child) => h('article', { class: 'card' },
    h('h2', {}, h('a', { href: `#/child/${child.id}` }, `${child.first_name} ${child.last_name}`)),
    h('p', { class: 'muted' }, `${t('group')}: ${child.group_name} · ${t('born')}: ${date(child.birth_date)}`),
    childNav(child, null)));
  const report = h('button', { type: 'button', class: 'secondary' }, t('myReport'));
  report.addEventListener('click', () => downloadHtml('/v1/me/report?format=html', 'mijn-gegevens.html').catch(() => announce(t('reportFailed'))));
  show(h('h1', {}, t('children')), h('div', { class: 'cards' }, cards), h('div', { class: 'actions' }, report));
}

async function banner(child) {
  // The 8-week window (API.md "Retention"): with a contract end set, the exact last day.
  try {
    const retention = await call('GET', `/v1/children/${child.id}/retention`);
    if (!retention.placement_end) return null;
    const until = Object.values(retention.categories).map((c) => c.visible_until).filter(Boolean).sort()[0];
    // "eindigt" for a contract still running, "eindigde" once its last day is past.
    const past = retention.placement_end < today();
    return h('p', { class: 'notice warn', role: 'note', id: 'window-banner' },
      t(past ? 'bannerEnded' : 'banner', { name: child.first_name, end: date(retention.placement_end), until: date(until || retention.placement_end) }));
  } catch (e) {
    return null;
  }
}

async function timeline(child) {
  const list = h('ul', { class: 'timeline', id: 'timeline', 'aria-label': t('timeline') });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, t('more'));
  const end = h('p', { class: 'muted', hidden: true }, t('endOfTimeline'));
  const empty = h('p', { id: 'timeline-empty', hidden: true }, t('nothingYet'));
  show(h('h1', {}, `${child.first_name} · ${t('timeline')}`), childNav(child, ''), list, empty, h('div', { class: 'actions' }, more), end);
  const notice = await banner(child);
  if (notice) list.before(notice);
  let cursor = null;
  let loading = false;
  let pages = 0;
  const load = async () => {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (cursor) query.set('cursor', cursor);
    const page = await call('GET', `/v1/children/${child.id}/items?${query}`);
    const shown = page.items.filter((item) => item.kind && item.variants);
    // One batch link call for the whole page: thumbnails, and the text of diary entries.
    const wanted = [];
    for (const item of shown) {
      if (item.variants.includes('thumb')) wanted.push({ item_id: item.id, variant: 'thumb' });
      else if (item.kind === 'diary' && item.variants.includes('original')) wanted.push({ item_id: item.id, variant: 'original' });
    }
    // The listing has no title, taken_at or diary date (API.md "Records"): each
    // item's own metadata is asked beside the links, all at once; a refusal just
    // leaves them out.
    const [found] = await Promise.all([links(wanted), ...shown.map(async (item) => {
      try {
        const details = await call('GET', `/v1/items/${encodeURIComponent(item.id)}`);
        item.title = details.title || null;
        item.taken_at = details.taken_at || null;
        item.date = details.date || null;
      } catch (e) {
        // shown with its kind and upload time
      }
    })]);
    const diaries = [];
    for (const item of shown) {
      const refused = found.get(`${item.id}/error`);
      if (refused && refused.error.code === 'consent_missing') continue; // not for this family to see
      const tile = tileFor(item, found);
      list.append(tile.li);
      if (tile.diary) diaries.push(tile.diary);
    }
    await Promise.all(diaries.map(async ([url, box]) => {
      const answer = await fetch(url, { credentials: 'omit' });
      box.textContent = answer.ok ? await answer.text() : t('unavailable');
    }));
    cursor = page.next_cursor || null;
    pages += 1;
    more.hidden = !cursor;
    end.hidden = Boolean(cursor) || list.children.length === 0;
    empty.hidden = list.children.length > 0;
    list.dataset.pages = String(pages);
  };
  const loadOnce = async () => {
    // After the first page, no cursor means the end: never fetch the first page again
    // (and a second click while a page is on its way does nothing).
    if (loading || (pages > 0 && !cursor)) return;
    loading = true;
    more.disabled = true;
    try {
      await load();
    } finally {
      loading = false;
      more.disabled = false;
    }
  };
  more.addEventListener('click', loadOnce);
  await loadOnce();
}

function tileFor(item, found) {
  // When it was taken, if known (a date alone, or a moment), or the day a diary
  // entry is about; else when it was stored.
  const taken = item.taken_at || item.date;
  const when = taken ? (taken.length === 10 ? date(taken) : moment(taken)) : moment(item.created_at);
  const label = `${item.title || t(item.kind)} · ${when}`;
  const thumb = found.get(`${item.id}/thumb`);
  if (item.kind === 'diary') {
    const box = h('div', { class: 'diary' }, t('loading'));
    const original = found.get(`${item.id}/original`);
    return { li: h('li', { dataset: { item: item.id, kind: item.kind } }, h('span', { class: 'caption' }, label), box), diary: original ? [original.url, box] : null };
  }
  if (item.kind !== 'photo' && item.kind !== 'video') return { li: documentTile(item, label), diary: null };
  const open = h('button', { type: 'button', class: 'tile', 'aria-label': `${t('open')}: ${label}` },
    thumb ? h('img', { src: thumb.url, alt: '' }) : null,
    h('span', { class: 'caption' }, label));
  open.addEventListener('click', () => (item.kind === 'video' ? playVideo(item, label) : viewPhoto(item, label)));
  return { li: h('li', { dataset: { item: item.id, kind: item.kind } }, open), diary: null };
}

// A document (an invoice, an observation...) is not a picture: its tile shows
// an icon, and opening it downloads the original through a signed link that
// says "attachment", under the name the vault gives it (the browser's own viewer
// can open a PDF from there).
function documentTile(item, label) {
  const problem = h('span', { class: 'caption notice bad', role: 'alert', hidden: true });
  const open = h('button', { type: 'button', class: 'tile document', 'aria-label': `${t('download')}: ${label}` },
    h('img', { src: 'document.svg', alt: '', class: 'doc-icon' }),
    h('span', { class: 'caption' }, label));
  open.addEventListener('click', async () => {
    open.disabled = true;
    problem.hidden = true;
    try {
      const issued = await link(item.id, 'original', { disposition: 'attachment' });
      const a = h('a', { href: issued.url, download: true, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (e) {
      problem.hidden = false;
      problem.textContent = errorText(e.code, e.message);
    } finally {
      open.disabled = false;
    }
  });
  return h('li', { dataset: { item: item.id, kind: item.kind } }, open, problem);
}

async function viewPhoto(item, label) {
  const picture = h('img', { alt: label, id: 'viewer-image' });
  const problem = h('p', { class: 'notice bad', role: 'alert', hidden: true });
  const original = h('button', { type: 'button', class: 'secondary' }, t('original'));
  const close = h('button', { type: 'button' }, t('close'));
  const box = dialog(label, h('h2', {}, label), picture, problem, h('div', { class: 'actions' }, original, close));
  close.addEventListener('click', () => box.close());
  const load = async (variant) => {
    try {
      const issued = await link(item.id, variant);
      picture.src = issued.url;
      picture.dataset.variant = variant;
    } catch (e) {
      problem.hidden = false;
      problem.textContent = errorText(e.code, e.message);
    }
  };
  original.addEventListener('click', async () => { await load('original'); original.disabled = true; announce(t('originalShown')); });
  await load(item.variants.includes('preview') ? 'preview' : 'original');
}

function playVideo(item, label) {
  const problem = h('p', { class: 'notice bad', role: 'alert', hidden: true });
  const close = h('button', { type: 'button' }, t('close'));
  const player = new VideoPlayer(item, (message) => {
    problem.hidden = !message;
    problem.textContent = message ? t('playerError', { m: message }) : '';
  });
  const box = dialog(label, h('h2', {}, label), player.video, problem, h('div', { class: 'actions' }, close));
  close.addEventListener('click', () => box.close());
  box.addEventListener('close', () => player.stop());
  player.start();
}

const CONSENT_TYPES = ['photo', 'diary', 'external_publication', 'school_handover'];

async function consents(child) {
  const data = await call('GET', `/v1/children/${child.id}/consents`);
  const rows = CONSENT_TYPES.map((type) => {
    const granted = Boolean(data.current[type]);
    const button = h('button', { type: 'button', class: granted ? 'danger' : '', dataset: { consent: type } }, granted ? t('withdraw') : t('grant'));
    button.addEventListener('click', () => (granted ? explainWithdrawal(child, type) : change(child, type, true)));
    return h('tr', { dataset: { consent: type } },
      h('th', { scope: 'row' }, t(`consentNames.${type}`)),
      h('td', {}, h('span', { class: granted ? 'badge yes' : 'badge no' }, granted ? t('given') : t('notGiven'))),
      h('td', {}, button));
  });
  const history = data.history.slice().reverse().map((event) => h('li', {},
    `${moment(event.changed_at)}: ${t(`consentNames.${event.type}`)} · ${event.granted ? t('given') : t('notGiven')}`,
    // `by` is a person's id: said as "you" when it is the reader, else left out.
    signedIn && event.by === signedIn.id ? ` (${t('byYou')})` : ''));
  show(h('h1', {}, `${child.first_name} · ${t('consents')}`), childNav(child, '/consents'),
    h('table', { id: 'consents' },
      h('thead', {}, h('tr', {}, ['consentColumn', 'consentState', 'consentChange'].map((key) => h('th', { scope: 'col' }, t(key))))),
      h('tbody', {}, rows)),
    h('h2', {}, t('history')), history.length ? h('ul', { id: 'consent-history' }, history) : h('p', {}, '–'));
}

function explainWithdrawal(child, type) {
  // The effect is said before it is done: nothing changes until the parent confirms.
  const effects = t(`withdrawEffects.${type}`).map((line) => h('li', {}, line.replace('{name}', child.first_name)));
  const confirm = h('button', { type: 'button', class: 'danger', id: 'confirm-withdraw' }, t('confirmWithdraw'));
  const cancel = h('button', { type: 'button', class: 'secondary' }, t('cancel'));
  const box = dialog(t('withdrawTitle'), h('h2', {}, t('withdrawTitle')),
    h('p', {}, t(`consentNames.${type}`)), h('ul', { id: 'withdraw-effects' }, effects), h('div', { class: 'actions' }, cancel, confirm));
  cancel.addEventListener('click', () => box.close());
  confirm.addEventListener('click', async () => { box.close(); await change(child, type, false); });
  cancel.focus();
}

async function change(child, type, granted) {
  await call('PUT', `/v1/children/${child.id}/consents/${type}`, { granted });
  await consents(child);
  announce(granted ? t('granted') : t('withdrawn'));
}

async function exportScreen(child) {
  const make = h('button', { type: 'button', id: 'make-export' }, t('makeExport'));
  const result = h('div', { id: 'export-result' });
  const report = h('button', { type: 'button', class: 'secondary' }, t('report'));
  report.addEventListener('click', () => downloadHtml(`/v1/children/${child.id}/report?format=html`, `overzicht-${child.first_name}.html`).catch(() => announce(t('reportFailed'))));
  show(h('h1', {}, `${child.first_name} · ${t('export')}`), childNav(child, '/export'),
    h('p', {}, t('exportIntro', { name: child.first_name })), h('div', { class: 'actions' }, make), result,
    h('h2', {}, t('report')), h('div', { class: 'actions' }, report));
  const notice = await banner(child);
  if (notice) make.parentElement.before(notice);
  make.addEventListener('click', async () => {
    make.disabled = true;
    result.replaceChildren(h('p', {}, t('loading')));
    try {
      const made = await call('POST', `/v1/children/${child.id}/exports`, {});
      const size = formatBytes(made.size);
      const name = `kluis-${child.first_name}.zip`;
      const bar = h('progress', { max: '1', value: '0', id: 'export-progress', 'aria-label': t('downloadProgress') });
      const state = h('p', { role: 'status', id: 'export-state' });
      const fetchIt = h('button', { type: 'button', id: 'export-fetch' }, t('downloadExport', { size }));
      fetchIt.addEventListener('click', async () => {
        fetchIt.disabled = true;
        try {
          save(await fetchWhole(made.url, made.size, (part) => { bar.value = part; }), name);
          state.textContent = t('downloaded');
        } catch (e) {
          state.textContent = errorText(e.code, e.message);
        } finally {
          fetchIt.disabled = false;
        }
      });
      result.replaceChildren(
        h('p', { class: 'notice good', role: 'status' }, t('exportReady', { size, until: moment(made.expires_at) })),
        h('div', { class: 'actions' }, fetchIt,
          h('a', { class: 'button secondary', href: made.url, download: name, id: 'export-download', dataset: { size: String(made.size) } }, t('downloadDirect'))),
        bar, state);
    } catch (e) {
      result.replaceChildren(h('p', { class: 'notice bad', role: 'alert' }, errorText(e.code, e.message)));
    } finally {
      make.disabled = false;
    }
  });
}

async function accessLog(child) {
  const data = await call('GET', `/v1/children/${child.id}/access-log`);
  const events = data.events.slice().sort((a, b) => (a.at < b.at ? 1 : -1));
  const heads = ['at', 'who', 'role', 'what', 'outcome'];
  // Each cell carries its column's name: on a phone the rows stack, label beside value.
  const cell = (key, text) => h('td', { dataset: { label: t(key) } }, text);
  const rows = events.map((event) => h('tr', { dataset: { action: event.action } },
    cell('at', moment(event.at)), cell('who', event.actor || '–'), cell('role', roleWords(event.role)),
    cell('what', actionWords(event.action)),
    cell('outcome', event.outcome === 'ok' ? t('outcomeOk') : `${t('outcomeRefused')}: ${errorText(event.outcome, event.outcome)}`)));
  show(h('h1', {}, `${child.first_name} · ${t('accessLog')}`), childNav(child, '/access'),
    h('p', {}, t('accessIntro', { name: child.first_name })),
    rows.length ? h('table', { id: 'access-log', class: 'stack' },
      h('thead', {}, h('tr', {}, heads.map((key) => h('th', { scope: 'col' }, t(key))))),
      h('tbody', {}, rows)) : h('p', {}, t('noEvents')));
}

async function requests(me) {
  const type = h('select', {}, Object.entries(t('requestTypes')).map(([value, label]) => h('option', { value }, label)));
  const which = h('select', {}, me.children.map((child) => h('option', { value: child.id }, child.first_name)));
  const note = h('textarea', { maxlength: '2000' });
  const result = h('div', { role: 'status' });
  const form = h('form', { class: 'card' }, h('h2', {}, t('newRequest')),
    field(t('requestType'), type), field(t('child'), which), field(t('note'), note),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('send'))), result);
  const list = h('div', {});
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { type: type.value, child_id: which.value };
    if (note.value.trim()) body.note = note.value.trim();
    try {
      const filed = await call('POST', '/v1/requests', body);
      result.replaceChildren(h('p', { class: 'notice good' }, t('requestSent', { due: date(filed.due_at) })));
      note.value = '';
      await fill();
    } catch (e) {
      result.replaceChildren(h('p', { class: 'notice bad', role: 'alert' }, errorText(e.code, e.message)));
    }
  });
  const fill = async () => {
    const data = await call('GET', '/v1/requests');
    list.replaceChildren(requestTable(data.requests, me));
  };
  show(h('h1', {}, t('requests')), form, h('h2', {}, t('myRequests')), list);
  await fill();
}

export function requestTable(items, me) {
  if (!items.length) return h('p', {}, t('noRequests'));
  const name = (id) => (me && me.children.find((c) => c.id === id) || {}).first_name || id || '–';
  return h('table', { id: 'requests' },
    h('thead', {}, h('tr', {}, ['type', 'child', 'status', 'received', 'due'].map((key) => h('th', { scope: 'col' }, t(key))))),
    h('tbody', {}, items.map((r) => h('tr', { class: r.overdue ? 'overdue' : '' },
      h('td', {}, t(`requestTypes.${r.type}`)), h('td', {}, name(r.child_id)),
      h('td', {}, r.overdue ? t('overdue') : r.status === 'answered' ? t('answered') : t('open_')),
      h('td', {}, date(r.received_at)), h('td', {}, date(r.due_at))))));
}

