// The public API, as the app calls it. The session token lives in
// sessionStorage: scripts of other origins cannot read it (same-origin rule),
// it is gone when the tab closes, and it is not a cookie because the API takes
// a bearer token, not cookies: nothing is sent along by the browser on its
// own, so no other site can make a call in the parent's name (no CSRF).
const KEY = 'kluis.token';

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  sessionStorage.setItem(KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
}

// The time to live asked for media links; a test (or a cautious user) can
// shorten it with localStorage 'kluis.linkTtlSeconds'. Default: the API's 300 s.
export function linkTtl() {
  const asked = Number(localStorage.getItem('kluis.linkTtlSeconds'));
  return Number.isFinite(asked) && asked >= 1 ? Math.floor(asked) : undefined;
}

let onSignedOut = () => {};
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  const current = token();
  if (current) headers.Authorization = `Bearer ${current}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let answer;
  try {
    answer = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'network', String(e));
  }
  if (answer.status === 204) return null;
  const type = answer.headers.get('Content-Type') || '';
  const data = type.includes('application/json') ? await answer.json() : await answer.text();
  if (!answer.ok) {
    const error = data && data.error ? data.error : { code: 'http_' + answer.status, message: String(data) };
    const refused = new ApiError(answer.status, error.code, error.message, Number(answer.headers.get('Retry-After')));
    if (answer.status === 401 && error.code === 'unauthenticated' && current && path !== '/v1/sessions') {
      clearToken();
      onSignedOut();
    }
    throw refused;
  }
  return data;
}

// A page of links in ONE call (API.md "POST /v1/links"): {item_id: link or error}.
export async function links(entries) {
  if (!entries.length) return new Map();
  const body = { items: entries };
  const ttl = linkTtl();
  if (ttl) body.ttl_seconds = ttl;
  const answer = await call('POST', '/v1/links', body);
  const found = new Map();
  for (const link of answer.links) found.set(`${link.item_id}/${link.variant || 'error'}`, link);
  return found;
}

export async function link(itemId, variant, extra = {}) {
  const body = { variant, ...extra };
  const ttl = linkTtl();
  if (ttl && body.ttl_seconds === undefined) body.ttl_seconds = ttl;
  return call('POST', `/v1/items/${encodeURIComponent(itemId)}/links`, body);
}

// A file upload with its progress (fetch has no upload progress; XHR does).
export function upload(childId, meta, file, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append('meta', new Blob([JSON.stringify(meta)], { type: 'application/json' }));
    form.append('file', file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/v1/children/${encodeURIComponent(childId)}/items`);
    xhr.setRequestHeader('Authorization', `Bearer ${token()}`);
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener('load', () => {
      const data = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else {
        const error = data && data.error ? data.error : { code: 'http_' + xhr.status, message: '' };
        reject(new ApiError(xhr.status, error.code, error.message));
      }
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'network', 'network error')));
    xhr.send(form);
  });
}

// A page of the API that answers HTML (the reports): fetched with the token,
// handed to the browser as a file to save and open (a link cannot carry a bearer token).
export async function downloadHtml(path, name) {
  const answer = await fetch(path, { headers: { Authorization: `Bearer ${token()}` }, credentials: 'omit' });
  if (!answer.ok) throw new ApiError(answer.status, 'http_' + answer.status, '');
  const blob = await answer.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
