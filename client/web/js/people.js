// Who is who: person id -> the profile the backend stored ({person, handle, name, guest,
// device}). Filled from presence, `who`, history, `profile` and `people` answers; a person
// seen only as a live message's `sender` is asked about with `whois` (docs/protocol.md, "Names
// and handles"). A name a message claims is never used.

import { isDevice, shortId } from "./view.js";

export const WHOIS_BATCH = 50;
const HANDLE_RE = /^[a-z0-9_-]{1,64}$/;

export class Directory {
  constructor() {
    this.profiles = new Map();
    this.asked = new Set(); // people a whois was sent for
  }

  // Takes what a backend message says about a person; true if anything changed. `ts` is the
  // time of a `profile` or `presence` event: once a timed update is known, an older one, or an
  // untimed answer (who, whois, history) that may have been read before it, only fills gaps.
  learn(person, fields, ts) {
    if (typeof person !== "string" || !fields) return false;
    const known = this.profiles.get(person) || {};
    const timed = typeof ts === "number" && Number.isFinite(ts);
    const stale = typeof known.ts === "number" && (!timed || ts < known.ts);
    const next = { ...known, person };
    const take = (field, ok) => {
      if (ok(fields[field]) && (!stale || next[field] === undefined)) next[field] = fields[field];
    };
    take("handle", (v) => typeof v === "string" && HANDLE_RE.test(v));
    take("name", (v) => typeof v === "string" && v.length > 0);
    take("guest", (v) => typeof v === "boolean");
    take("device", (v) => typeof v === "boolean");
    if (timed && !stale) next.ts = ts;
    const changed = JSON.stringify(known) !== JSON.stringify(next);
    if (changed) this.profiles.set(person, next);
    return changed;
  }

  get(person) {
    return this.profiles.get(person) || null;
  }

  byHandle(handle) {
    for (const profile of this.profiles.values()) if (profile.handle === handle) return profile;
    return null;
  }

  // People to ask about (never twice), in batches the backend takes.
  unknown(people) {
    const ask = [];
    for (const person of people) {
      if (typeof person !== "string" || this.profiles.has(person) || this.asked.has(person)) continue;
      this.asked.add(person);
      ask.push(person);
    }
    const batches = [];
    for (let i = 0; i < ask.length; i += WHOIS_BATCH) batches.push(ask.slice(i, i + WHOIS_BATCH));
    return batches;
  }

  isDevice(person) {
    const profile = this.get(person);
    return profile && typeof profile.device === "boolean" ? profile.device : isDevice(person);
  }

  isGuest(person) {
    const profile = this.get(person);
    return Boolean(profile && profile.guest);
  }

  // How a person is named on screen: their stored name and @handle; a device by its thing
  // name; someone not yet known by the start of their id.
  label(person) {
    const profile = this.get(person);
    if (this.isDevice(person)) return String(person);
    if (!profile || !profile.handle) return shortId(person);
    const name = profile.name && profile.name !== profile.handle ? `${profile.name} ` : "";
    return `${name}@${profile.handle}`;
  }
}
