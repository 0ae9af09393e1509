// Nothing a person sent is lost: each chat message stays here until the backend carries it
// back (on the room topic, or in the sender's inbox for direct and group messages), and is
// published again, with the same id, after a reconnect or when it has waited too long. The
// backend stores a message once per (sender, id) and the page shows it once, so a resend is
// never a duplicate. Kept in sessionStorage so a reload of the tab does not lose it either.

export const RESEND_AFTER_MS = 10000;
const MAX_PENDING = 200; // a tab offline for long keeps at most this many (the oldest go first)

export class Outbox {
  constructor(storageKey, now = () => Date.now()) {
    this.storageKey = storageKey;
    this.now = now;
    this.pending = new Map(); // id -> {topic, body, sentAt}
    try {
      const saved = JSON.parse(sessionStorage.getItem(storageKey) || "[]");
      for (const entry of Array.isArray(saved) ? saved : []) {
        if (entry && typeof entry.topic === "string" && entry.body && typeof entry.body.id === "string") {
          this.pending.set(entry.body.id, { topic: entry.topic, body: entry.body, sentAt: 0 });
        }
      }
    } catch {
      /* a damaged entry holds nothing to resend */
    }
  }

  save() {
    const entries = [...this.pending.values()].map(({ topic, body }) => ({ topic, body }));
    sessionStorage.setItem(this.storageKey, JSON.stringify(entries));
  }

  // Keeps a message published (or to be published) on `topic`; `sent` says whether it went
  // out now (else it waits for the next connect).
  keep(topic, body, sent) {
    this.pending.set(body.id, { topic, body, sentAt: sent ? this.now() : 0 });
    while (this.pending.size > MAX_PENDING) this.pending.delete(this.pending.keys().next().value);
    this.save();
  }

  // The backend carried it back: done.
  seen(id) {
    if (this.pending.delete(id)) this.save();
  }

  has(id) {
    return this.pending.has(id);
  }

  bodies() {
    return [...this.pending.values()].map((p) => p.body);
  }

  // What to publish again now ({topic, body}): everything after a reconnect, else what
  // waited too long.
  due(all = false) {
    const now = this.now();
    const out = [];
    for (const entry of this.pending.values()) {
      if (all || now - entry.sentAt >= RESEND_AFTER_MS) {
        entry.sentAt = now;
        out.push({ topic: entry.topic, body: entry.body });
      }
    }
    return out;
  }

  clear() {
    this.pending.clear();
    sessionStorage.removeItem(this.storageKey);
  }
}
