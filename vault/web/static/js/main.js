// Start, sign-in and the screens' router (hash routes: the server serves one page).
import { ApiError, call, clearToken, setToken, token, whenSignedOut } from './api.js';
import { announce, field, h, show } from './dom.js';
import { errorText, lang, setLang, t } from './i18n.js';
import * as parent from './parent.js';
import * as staff from './staff.js';
import * as officer from './officer.js';

const state = { me: null };

// Arriving from single sign-on: /app/#token=… signs in with it, and the token
// leaves the address bar (and the history) before anything else runs.
function takeTokenFromAddress() {
  const hash = window.location.hash;
  if (!hash.startsWith('#token=')) return;
  const value = decodeURIComponent(hash.slice('#token='.length).split('&')[0]);
  history.replaceState(null, '', window.location.pathname + window.location.search);
  if (value) setToken(value);
}

function chrome() {
  document.documentElement.lang = lang();
  document.querySelector('.skip').textContent = t('skip');
  document.getElementById('nav').setAttribute('aria-label', t('menu'));
  const langButton = document.getElementById('lang');
  langButton.textContent = t('language');
  langButton.setAttribute('lang', lang() === 'nl' ? 'en' : 'nl');
  const out = document.getElementById('signout');
  out.textContent = t('signOut');
  out.hidden = !token();
  const nav = document.getElementById('nav');
  nav.replaceChildren();
  if (!state.me) return;
  const entries = [];
  if (state.me.role === 'guardian') {
    entries.push(['#/', t('children')], ['#/requests', t('requests')]);
  } else if (['staff', 'location_manager'].includes(state.me.role)) {
    entries.push(['#/', t('staffTitle')]);
  } else if (state.me.role === 'privacy_officer') {
    entries.push(['#/', t('officerTitle')]);
  }
  for (const [href, label] of entries) {
    const current = (window.location.hash || '#/') === href;
    nav.append(h('a', { href, 'aria-current': current ? 'page' : null }, label));
  }
}

function signInScreen(message) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const code = h('input', { type: 'text', name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}' });
  const codeField = field(t('totp'), code);
  codeField.hidden = true;
  const problem = h('p', { class: 'notice bad', role: 'alert', hidden: !message }, message || '');
  const form = h('form', { class: 'card', novalidate: true },
    h('h1', {}, t('signInTitle')),
    problem,
    field(t('email'), email),
    field(t('password'), password),
    codeField,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, t('signIn'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { email: email.value.trim(), password: password.value };
    if (!codeField.hidden && code.value) body.totp = code.value.trim();
    try {
      const session = await call('POST', '/v1/sessions', body);
      setToken(session.token);
      password.value = '';
      await start();
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      problem.hidden = false;
      if (e.code === 'totp_required') {
        codeField.hidden = false;
        problem.textContent = t('totpNeeded');
        code.focus();
      } else if (e.code === 'rate_limited') {
        problem.textContent = t('tooMany', { s: e.retryAfter || 60 });
      } else if (e.code === 'unauthenticated') {
        problem.textContent = t('signInFailed');
      } else {
        problem.textContent = errorText(e.code, e.message);
      }
    }
  });
  show(form);
  chrome();
  email.focus();
}

async function signOut() {
  try {
    if (token()) await call('DELETE', '/v1/sessions/current');
  } catch (e) {
    // Signed out on this device either way: the token is forgotten below.
  }
  clearToken();
  state.me = null;
  sessionStorage.clear();
  history.replaceState(null, '', window.location.pathname);
  signInScreen();
}

async function route() {
  if (!token()) return signInScreen();
  if (!state.me) {
    show(h('p', {}, t('loading')));
    try {
      state.me = await call('GET', '/v1/me');
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return signInScreen();
      return show(h('p', { class: 'notice bad', role: 'alert' }, errorText(e.code, e.message)));
    }
  }
  chrome();
  const parts = (window.location.hash.replace(/^#\/?/, '') || '').split('/').filter(Boolean);
  const me = state.me;
  try {
    if (me.role === 'guardian') await parent.screen(me, parts);
    else if (['staff', 'location_manager'].includes(me.role)) await staff.screen(me, parts);
    else if (me.role === 'privacy_officer') await officer.screen(me, parts);
    else show(h('h1', {}, 'Kluis'), h('p', {}, t('noRole')));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return signInScreen(errorText('unauthenticated'));
    show(h('p', { class: 'notice bad', role: 'alert' }, e instanceof ApiError ? errorText(e.code, e.message) : String(e)));
  }
}

async function start() {
  state.me = null;
  if (window.location.hash.startsWith('#token=')) takeTokenFromAddress();
  await route();
}

document.getElementById('lang').addEventListener('click', () => {
  setLang(lang() === 'nl' ? 'en' : 'nl');
  announce(t('language'));
  route();
});
document.getElementById('signout').addEventListener('click', signOut);
window.addEventListener('hashchange', () => {
  if (window.location.hash.startsWith('#token=')) start();
  else route();
});
whenSignedOut(() => { state.me = null; signInScreen(errorText('unauthenticated')); });
takeTokenFromAddress();
start();
