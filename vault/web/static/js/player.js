// A video from a signed link that outlives its link. Links expire (300 s by
// default); a player paused past that point would freeze on its next range
// request (403 link_expired). This one asks for a new link when the old one
// has expired (before a seek or play, or when the element reports an error)
// and puts the new source at the same moment, playing again if it was.
import { link } from './api.js';
import { h } from './dom.js';
import { errorText } from './i18n.js';

export class VideoPlayer {
  constructor(item, onProblem) {
    this.item = item;
    this.onProblem = onProblem;
    this.variant = item.variants.includes('web') ? 'web' : 'original';
    this.expiresAt = 0;
    this.renewing = null;
    this.issued = 0;
    this.lastTime = 0;
    this.recoveries = 0;
    this.video = h('video', { controls: true, preload: 'metadata', playsinline: true, id: 'player', 'aria-label': item.title || 'video' });
    this.video.addEventListener('timeupdate', () => { if (!this.video.seeking) this.lastTime = this.video.currentTime; });
    this.video.addEventListener('seeking', () => this.beforeUse(this.video.currentTime));
    this.video.addEventListener('play', () => this.beforeUse(this.video.currentTime));
    this.video.addEventListener('error', () => this.recover());
  }

  expired() {
    return Date.now() >= this.expiresAt - 1000;
  }

  async start() {
    await this.renew(0, false);
  }

  stop() {
    this.video.pause();
    this.video.removeAttribute('src');
    this.video.load();
  }

  beforeUse(at) {
    if (this.expired() && !this.renewing) this.renew(at, !this.video.paused);
  }

  recover() {
    // The element failed (an expired link answers 403): a fresh link, same moment.
    if (this.renewing) return;
    const code = this.video.error ? this.video.error.code : 0;
    // A source that keeps failing with fresh links is broken, not expired.
    if (++this.recoveries > 3) {
      this.onProblem(`media error ${code}`);
      return;
    }
    this.renew(this.video.seeking ? this.video.currentTime : this.lastTime, !this.video.paused);
  }

  renew(at, play) {
    this.renewing = (async () => {
      try {
        const issued = await link(this.item.id, this.variant);
        this.issued += 1;
        this.video.dataset.links = String(this.issued);
        this.expiresAt = Date.parse(issued.expires_at);
        const ready = new Promise((resolve) => this.video.addEventListener('loadedmetadata', resolve, { once: true }));
        this.video.src = issued.url;
        await ready;
        if (at > 0) this.video.currentTime = at;
        if (play) await this.video.play().catch(() => {});
        this.onProblem(null);
      } catch (e) {
        this.onProblem(errorText(e.code, e.message));
      } finally {
        this.renewing = null;
        this.video.dataset.renewing = '';
      }
    })();
    this.video.dataset.renewing = '1';
    return this.renewing;
  }
}
