// What the page knows: conversations (rooms, direct, groups) with their messages, history
// cursors and presence. No DOM and no network here, so every rule about de-duplication and
// ordering lives in one place.

export function convKey(kind, id) {
  return `${kind}:${id}`;
}

function byTime(a, b) {
  return a.ts - b.ts || (a.sender < b.sender ? -1 : a.sender > b.sender ? 1 : 0) || (a.id < b.id ? -1 : 1);
}

// Whether `update` (a history copy or an event) is newer than what is shown: a later edit or a
// deletion.
function changedSince(known, update) {
  if (typeof update.deleted === "number" && typeof known.deleted !== "number") return true;
  if (typeof update.edited === "number" && !(known.edited >= update.edited)) return true;
  return false;
}

export class Conversation {
  constructor(kind, id, title) {
    this.kind = kind; // "room", "dm" or "group"
    this.id = id;
    this.title = title || id;
    this.messages = []; // oldest first
    this.seen = new Set(); // sender|id of every message shown
    this.cursor = undefined; // undefined: no page yet; null: nothing older; else the cursor
    this.loadingOlder = false;
    this.unread = 0;
    this.presence = new Map(); // clientId -> {status, name, ts}
    this.joined = false; // rooms: a join was sent on this page (else the next connect sends it)
    this.typing = new Map(); // clientId -> until (ms since epoch)
    this.devices = new Map(); // thing name -> {data, ts}: the latest telemetry of each device
  }

  get key() {
    return convKey(this.kind, this.id);
  }

  // Adds messages not seen before; returns how many were new. A message is the same one when
  // its sender and id are (ids are each sender's idempotency keys).
  // A message of ours the backend has not carried back yet replaces its pending copy when it
  // does (and counts as changed).
  add(messages) {
    let added = 0;
    for (const m of messages) {
      const mark = `${m.sender}|${m.id}`;
      if (this.seen.has(mark)) {
        const at = this.messages.findIndex((x) => x.id === m.id && x.sender === m.sender);
        if (at < 0 || m.pending) continue;
        const known = this.messages[at];
        if (known.pending || changedSince(known, m)) {
          this.messages[at] = known.pending ? m : { ...known, ...m };
          added += 1;
        }
        continue;
      }
      this.seen.add(mark);
      this.messages.push(m);
      added += 1;
    }
    if (added) this.messages.sort(byTime);
    return added;
  }

  // An `edit` or `delete` event from the backend for one of this conversation's messages.
  change(sender, id, fields) {
    const at = this.messages.findIndex((x) => x.id === id && x.sender === sender);
    if (at < 0) return false;
    const known = this.messages[at];
    const next = { ...known, ...fields };
    if (typeof fields.deleted === "number") delete next.body;
    if (!changedSince(known, next)) return false;
    this.messages[at] = next;
    return true;
  }

  // Someone typed in this room: shown until a few seconds pass without another sign.
  setTyping(clientId, until) {
    this.typing.set(clientId, until);
  }

  typingNow(now, me) {
    const who = [];
    for (const [clientId, until] of this.typing) {
      if (until <= now) this.typing.delete(clientId);
      else if (clientId !== me) who.push(clientId);
    }
    return who.sort();
  }

  // A device's reading from the room's activity: the latest by time wins.
  setDevice(thing, data, ts) {
    const known = this.devices.get(thing);
    if (known && known.ts > ts) return false;
    this.devices.set(thing, { data, ts });
    return true;
  }

  // A history page (newest first). The cursor moves only when the page reaches further back
  // than what is shown, so a gap-filling page of the newest messages never loses our place.
  addPage(messages, cursor) {
    const oldestBefore = this.messages.length ? this.messages[0].ts : Infinity;
    const added = this.add(messages);
    const oldestOfPage = messages.length ? Math.min(...messages.map((m) => m.ts)) : Infinity;
    if (cursor === null || this.cursor === undefined || oldestOfPage < oldestBefore) {
      this.cursor = cursor;
    }
    this.loadingOlder = false;
    return added;
  }

  // Keeps the latest update per client id (presence carries the time of its event).
  setPresence(clientId, status, name, ts) {
    const known = this.presence.get(clientId);
    if (known && known.ts > ts) return false;
    this.presence.set(clientId, { status, name: name || (known && known.name) || null, ts });
    return true;
  }

  // A `who` answer: exactly these are online now, except where a newer update says otherwise.
  setOnline(entries, asOf) {
    const online = new Set();
    for (const e of entries) {
      online.add(e.clientId);
      const known = this.presence.get(e.clientId);
      if (!known || known.ts <= asOf) {
        this.presence.set(e.clientId, { status: "online", name: e.name || (known && known.name) || null, ts: asOf });
      }
    }
    for (const [clientId, known] of this.presence) {
      if (!online.has(clientId) && known.ts <= asOf) known.status = "offline";
    }
  }

  online() {
    return [...this.presence.entries()]
      .filter(([, p]) => p.status === "online")
      .map(([clientId, p]) => ({ clientId, name: p.name }))
      .sort((a, b) => (a.clientId < b.clientId ? -1 : 1));
  }
}

export class ChatState {
  constructor(me) {
    this.me = me;
    this.conversations = new Map();
    this.groups = new Map(); // group id -> {name, owner, members}
  }

  get(kind, id, title) {
    const key = convKey(kind, id);
    let conv = this.conversations.get(key);
    if (!conv) {
      conv = new Conversation(kind, id, title);
      this.conversations.set(key, conv);
    } else if (title) {
      conv.title = title;
    }
    return conv;
  }

  find(kind, id) {
    return this.conversations.get(convKey(kind, id)) || null;
  }

  list(kind) {
    return [...this.conversations.values()].filter((c) => c.kind === kind);
  }

  remove(kind, id) {
    this.conversations.delete(convKey(kind, id));
  }

  // Which conversation a delivered or stored message belongs to.
  conversationOf(message) {
    if (typeof message.room === "string") return this.get("room", message.room);
    if (typeof message.groupId === "string") {
      const group = this.groups.get(message.groupId);
      return this.get("group", message.groupId, group && group.name);
    }
    if (typeof message.recipient === "string") {
      const other = message.sender === this.me ? message.recipient : message.sender;
      return this.get("dm", other);
    }
    return null;
  }
}
