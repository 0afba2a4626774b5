// The privacy officer: the request register (overdue first, as the API sorts
// it), the breach question (js/breach.js), the audit chain's verification,
// destruction certificates per child.
import { call } from './api.js';
import { breachForm } from './breach.js';
import { field, h, show } from './dom.js';
import { errorText, moment, t } from './i18n.js';
import { requestTable } from './parent.js';

export async function screen() {
  const data = await call('GET', '/v1/requests');
  const verify = h('button', { type: 'button', id: 'verify' }, t('verify'));
  const verdict = h('div', { role: 'status', id: 'verify-result' });
  verify.addEventListener('click', async () => {
    verify.disabled = true;
    try {
      const result = await call('GET', '/v1/audit/verify');
      verdict.replaceChildren(h('p', { class: result.ok ? 'notice good' : 'notice bad' },
        t(result.ok ? 'verifyOk' : 'verifyBad', { n: result.events, head: (result.head || '').slice(0, 16) })));
    } catch (e) {
      verdict.replaceChildren(h('p', { class: 'notice bad', role: 'alert' }, errorText(e.code, e.message)));
    } finally {
      verify.disabled = false;
    }
  });
  const childId = h('input', { type: 'text', id: 'certificate-child', autocomplete: 'off' });
  const certificates = h('div', { id: 'certificates' });
  const form = h('form', { class: 'card' }, h('h2', {}, t('certificates')), field(t('childId'), childId),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('show'))), certificates);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const found = await call('GET', `/v1/children/${encodeURIComponent(childId.value.trim())}/certificates`);
      certificates.replaceChildren(found.certificates.length ? h('table', {},
        h('thead', {}, h('tr', {}, ['category', 'destroyedAt', 'items'].map((key) => h('th', { scope: 'col' }, t(key))))),
        h('tbody', {}, found.certificates.map((c) => h('tr', {}, h('td', {}, t(c.category)), h('td', {}, moment(c.destroyed_at)), h('td', {}, String(c.items))))))
        : h('p', {}, t('noCertificates')));
    } catch (e) {
      certificates.replaceChildren(h('p', { class: 'notice bad', role: 'alert' }, errorText(e.code, e.message)));
    }
  });
  show(h('h1', {}, t('officerTitle')), h('section', { class: 'card' }, h('h2', {}, t('register')), requestTable(data.requests, null)),
    breachForm(), h('section', { class: 'card' }, h('h2', {}, t('verify')), verify, verdict), form);
}
