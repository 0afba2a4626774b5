// Staff on a tablet: their groups, who may be photographed today, uploads
// with children tagged (each file's progress and refusal in words), a diary entry.
import { call, upload } from './api.js';
import { announce, field, h, show } from './dom.js';
import { date, errorText, t, today } from './i18n.js';

// A child whose contract has ended gets no new records (the API answers
// outside_window): staff see it said, and are not offered the child to tag.
function ended(child) {
  const end = child.placement && child.placement.end_date;
  return Boolean(end) && end < today();
}

function groupsOf(me) {
  const groups = new Map();
  for (const child of me.children) {
    if (!groups.has(child.group_id)) groups.set(child.group_id, { id: child.group_id, name: child.group_name, children: [] });
    groups.get(child.group_id).children.push(child);
  }
  return [...groups.values()];
}

export async function screen(me) {
  const groups = groupsOf(me);
  const consent = new Map();
  await Promise.all(me.children.map(async (child) => {
    try {
      const data = await call('GET', `/v1/children/${child.id}/consents`);
      consent.set(child.id, Boolean(data.current.photo));
    } catch (e) {
      consent.set(child.id, false);
    }
  }));
  const sections = groups.map((group) => h('section', { class: 'card', 'aria-labelledby': `g-${group.id}` },
    h('h2', { id: `g-${group.id}` }, `${t('group')} ${group.name}`),
    h('table', { class: 'consent-glance' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('child')), h('th', { scope: 'col' }, t('consentAtGlance')))),
      h('tbody', {}, group.children.map((child) => {
        if (ended(child)) {
          return h('tr', { dataset: { child: child.id, photo: 'ended' } },
            h('th', { scope: 'row' }, `${child.first_name} ${child.last_name}`),
            h('td', {}, h('span', { class: 'badge no' }, t('contractEnded', { end: date(child.placement.end_date) }))));
        }
        const yes = consent.get(child.id);
        return h('tr', { dataset: { child: child.id, photo: yes ? 'yes' : 'no' } },
          h('th', { scope: 'row' }, `${child.first_name} ${child.last_name}`),
          h('td', {}, h('span', { class: yes ? 'badge yes' : 'badge no' }, yes ? t('yes') : t('no'))));
      })))));
  const current = { ...me, children: me.children.filter((child) => !ended(child)) };
  const diary = diaryForm(current);
  show(h('h1', {}, t('staffTitle')), ...(sections.length ? sections : [h('p', {}, t('noChildren'))]),
    uploadForm(current, consent, diary.addPhoto), diary.form);
}

function uploadForm(me, consent, onPhoto) {
  const kindChoice = h('select', { id: 'upload-kind' },
    h('option', { value: 'media' }, t('kindMedia')), h('option', { value: 'observation' }, t('kindObservation')));
  const picker = h('input', { type: 'file', multiple: true, accept: 'image/*,video/*', id: 'upload-files' });
  kindChoice.addEventListener('change', () => {
    picker.accept = kindChoice.value === 'observation' ? 'application/pdf,image/*' : 'image/*,video/*';
  });
  const rows = h('ul', { class: 'uploads', id: 'upload-list' });
  const send = h('button', { type: 'submit', disabled: true }, t('uploadAll'));
  const problem = h('p', { class: 'notice bad', role: 'alert', hidden: true });
  let chosen = [];
  picker.addEventListener('change', () => {
    chosen = [...picker.files].map((file, index) => {
      const boxes = me.children.map((child) => {
        const box = h('input', { type: 'checkbox', value: child.id, dataset: { child: child.id } });
        const warning = consent.get(child.id) ? null : h('span', { class: 'no-consent' }, h('span', { 'aria-hidden': 'true' }, ' ⚠'), h('span', { class: 'visually-hidden' }, ` (${t('noPhotoConsent')})`));
        return [box, h('label', {}, box, child.first_name, warning)];
      });
      const bar = h('progress', { max: '1', value: '0', 'aria-label': file.name });
      const state = h('span', { class: 'state', role: 'status' });
      const li = h('li', { class: 'card', dataset: { file: file.name, index: String(index) } },
        h('strong', {}, file.name),
        h('fieldset', { class: 'tags' }, h('legend', {}, t('tagFor', { file: file.name })), boxes.map(([, label]) => label)),
        bar, state);
      return { file, li, bar, state, boxes: boxes.map(([box]) => box) };
    });
    rows.replaceChildren(...chosen.map((row) => row.li));
    send.disabled = chosen.length === 0;
  });
  const form = h('form', { class: 'card', id: 'upload-form' }, h('h2', {}, t('upload')),
    field(t('uploadKind'), kindChoice), field(t('chooseFiles'), picker), rows, problem, h('div', { class: 'actions' }, send));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const missing = chosen.some((row) => !row.boxes.some((box) => box.checked));
    problem.hidden = !missing;
    problem.textContent = missing ? t('uploadNeedsTag') : '';
    if (missing) return;
    send.disabled = true;
    // One at a time: a tablet on the centre's Wi-Fi, and the server streams each.
    for (const row of chosen) {
      const tagged = row.boxes.filter((box) => box.checked).map((box) => box.value);
      // The server sniffs the bytes; the kind says what the record is (API.md "Records").
      const kind = kindChoice.value === 'observation' ? 'observation' : row.file.type.startsWith('video/') ? 'video' : 'photo';
      row.li.dataset.outcome = 'sending';
      try {
        const stored = await upload(tagged[0], { kind, tagged_children: tagged.slice(1) }, row.file, (part) => { row.bar.value = part; });
        row.li.dataset.item = stored.id;
        if (kind === 'photo') onPhoto(stored, row.file.name);
        row.bar.value = 1;
        row.state.textContent = t('uploaded');
        row.state.className = 'state badge yes';
        row.li.dataset.outcome = 'stored';
      } catch (e) {
        const lacking = me.children.filter((c) => tagged.includes(c.id) && !consent.get(c.id)).map((c) => c.first_name);
        const names = me.children.filter((c) => tagged.includes(c.id)).map((c) => c.first_name);
        if (e.code === 'consent_missing' && lacking.length) row.state.textContent = t('consentMissingFor', { names: lacking.join(', ') });
        // The contract ended while this screen was open: the screen's list is older than the answer.
        else if (e.code === 'outside_window') row.state.textContent = t('contractEndedFor', { names: names.join(', ') });
        // The server's own sentence says what was wrong with this file
        // (damaged, empty, too large for its kind) and what to do.
        else if (['unsupported_type', 'invalid_input', 'too_large'].includes(e.code) && e.message) {
          row.state.textContent = `${errorText(e.code)} ${e.message}`;
        } else row.state.textContent = errorText(e.code, e.message);
        row.state.className = 'state notice bad';
        row.bar.classList.add('refused'); // red, not a full blue bar that reads as done
        row.li.dataset.outcome = e.code;
      }
    }
    const stored = chosen.filter((row) => row.li.dataset.outcome === 'stored').length;
    announce(stored === chosen.length ? t('uploaded') : t('uploadedSome', { stored, refused: chosen.length - stored }));
    send.disabled = false;
  });
  return form;
}

function diaryForm(me) {
  const which = h('select', { id: 'diary-child' }, me.children.map((child) => h('option', { value: child.id }, child.first_name)));
  const day = h('input', { type: 'date', id: 'diary-date', value: new Date().toISOString().slice(0, 10), required: true });
  const text = h('textarea', { id: 'diary-text', required: true, maxlength: '5000' });
  const result = h('div', { role: 'status' });
  // Photos uploaded on this screen can go with the entry (photo_ids).
  const photos = h('fieldset', { class: 'tags', id: 'diary-photos', hidden: true }, h('legend', {}, t('diaryPhotos')));
  const form = h('form', { class: 'card', id: 'diary-form' }, h('h2', {}, t('diaryEntry')),
    field(t('diaryChild'), which), field(t('diaryDate'), day), field(t('diaryText'), text), photos,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('send'))), result);
  const addPhoto = (item, name) => {
    const box = h('input', { type: 'checkbox', value: item.id, dataset: { photo: item.id } });
    photos.append(h('label', { dataset: { children: item.children.join(' ') } }, box, name));
    photos.hidden = false;
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = [...photos.querySelectorAll('input:checked')].map((box) => box.value);
    const body = { kind: 'diary', date: day.value, text: text.value };
    if (chosen.length) body.photo_ids = chosen;
    try {
      await call('POST', `/v1/children/${which.value}/items`, body);
      text.value = '';
      for (const box of photos.querySelectorAll('input:checked')) box.checked = false;
      result.replaceChildren(h('p', { class: 'notice good' }, t('diarySaved')));
    } catch (e) {
      result.replaceChildren(h('p', { class: 'notice bad', role: 'alert' }, errorText(e.code, e.message)));
    }
  });
  return { form, addPhoto };
}
