// Nothing a person sent is lost: each chat message stays here until the backend carries it
// back (on the room topic, or in the sender's inbox for direct and group messages), and is
// published again, with the same id, after a reconnect or when it has waited too long. The
// backend stores a message once per (sender, id) and the page shows it once, so a resend is
// never a duplicate. Kept in sessionStorage so a reload of the tab does not lose it either.
// A room can carry a message whose store is then lost (the stack dies between the two), so a
// carried room message is remembered a while longer, and the first history page read after a
// reconnect is checked against it (unstored): what the room carried but history does not hold
// is sent again.

export const RESEND_AFTER_MS = 10000;
const MAX_PENDING = 200; // a tab offline for long keeps at most this many (the oldest go first)
// Errors that mean "this message was not kept: send it again" (docs/protocol.md, Errors).
export const TRANSIENT = new Set(["STORE_FAILED", "INTERNAL", "RATE_LIMITED"]);
export const KEEP_CARRIED_MS = 120000; // how long a carried room message may still be unstored
const MAX_CARRIED = 200;

export class Outbox {
  constructor(storageKey, now = () => Date.now()) {
    this.storageKey = storageKey;
    this.now = now;
    this.pending = new Map(); // id -> {topic, body, sentAt}
    this.carried = new Map(); // id -> {topic, body, carriedAt}: room messages, maybe unstored
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

  // The backend carried it back: no more resends, but a room message is remembered until
  // history shows it stored (or KEEP_CARRIED_MS passed).
  seen(id) {
    const entry = this.pending.get(id);
    if (!entry) return;
    this.pending.delete(id);
    this.save();
    if (typeof entry.body.room !== "string") return; // direct and group: carried once stored
    const now = this.now();
    this.carried.set(id, { topic: entry.topic, body: entry.body, carriedAt: now });
    for (const [old, kept] of this.carried) {
      if (this.carried.size <= MAX_CARRIED && now - kept.carriedAt < KEEP_CARRIED_MS) break;
      this.carried.delete(old);
    }
  }

  // An error that means "not kept, try again" (TRANSIENT) about a message of ours, pending or
  // already carried: it is published again in `afterMs`. False when it is not ours.
  retry(id, afterMs) {
    const entry = this.pending.get(id) || this.carried.get(id);
    if (!entry) return false;
    this.carried.delete(id);
    const sentAt = this.now() - RESEND_AFTER_MS + Math.max(afterMs, 0);
    this.pending.set(id, { topic: entry.topic, body: entry.body, sentAt });
    this.save();
    return true;
  }

  // History holds it, or the backend refused it: nothing more to do.
  done(id) {
    this.carried.delete(id);
    if (this.pending.delete(id)) this.save();
  }

  // Room messages carried before `before` (a reconnect) that the history page of `room` read
  // after it does not hold (`stored`: our ids on it): pending again, and returned to publish
  // now. A resend of one stored after all is harmless: the store keeps one per id.
  unstored(room, stored, before) {
    const out = [];
    for (const [id, entry] of this.carried) {
      if (entry.body.room !== room || entry.carriedAt >= before) continue;
      this.carried.delete(id);
      if (stored.has(id)) continue;
      this.pending.set(id, { topic: entry.topic, body: entry.body, sentAt: this.now() });
      out.push({ topic: entry.topic, body: entry.body });
    }
    if (out.length) this.save();
    return out;
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
    this.carried.clear();
    sessionStorage.removeItem(this.storageKey);
  }
}
