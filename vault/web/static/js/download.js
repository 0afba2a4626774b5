// An export's signed link fetched with a progress bar, resumed after a broken
// connection with a Range request from the byte it stopped at (the link
// supports Range and If-Range, API.md "Export"), then handed to the browser
// as the file to save. The expected size is the export's answer's `size`: a
// stream that ends short of it was broken, not finished. (The plain link
// stays beside it: the browser's own download also resumes, without a bar.)
import { ApiError } from './api.js';

const ATTEMPTS = 6;

async function refusal(answer) {
  let code = `http_${answer.status}`;
  try {
    code = (await answer.json()).error.code;
  } catch (e) {
    // not the API's error body
  }
  return new ApiError(answer.status, code, '');
}

export async function fetchWhole(url, size, onProgress) {
  let parts = [];
  let received = 0;
  let tag = null;
  let failures = 0;
  while (received < size) {
    const headers = {};
    if (received > 0) {
      headers.Range = `bytes=${received}-`;
      if (tag) headers['If-Range'] = tag;
    }
    try {
      const answer = await fetch(url, { headers, credentials: 'omit', cache: 'no-store' });
      if (!answer.ok) throw await refusal(answer);
      if (received > 0 && answer.status !== 206) {
        parts = []; // the whole content again (it changed, or no range was given)
        received = 0;
      }
      tag = answer.headers.get('ETag') || tag;
      const reader = answer.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
        received += value.length;
        onProgress(Math.min(received / size, 1));
      }
    } catch (e) {
      if (e instanceof ApiError) throw e; // a refusal (expired link...) is not a broken connection
    }
    if (received < size) {
      failures += 1;
      if (failures >= ATTEMPTS) throw new ApiError(0, 'network', 'the download kept breaking off');
      await new Promise((resolve) => setTimeout(resolve, 300 * failures));
    }
  }
  return new Blob(parts, { type: 'application/zip' });
}

export function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
