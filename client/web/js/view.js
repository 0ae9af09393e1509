// DOM building. Everything that came from the network or from a person (message text,
// display names, room and group names, client ids) goes in through textContent or an
// attribute set with setAttribute on an inert attribute: never as HTML. Links are <a> elements
// built here, only for http and https URLs.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

export function shortId(clientId) {
  const tail = String(clientId).split(":").pop();
  return tail.slice(0, 8);
}

// A Cognito identity id ("us-east-1:<uuid>"); anything else that speaks is a device (thing
// names can never take this shape: `iotchat device create` refuses them).
const IDENTITY_ID_RE = /^[a-z]{2}(-[a-z]+)+-\d:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isDevice(clientId) {
  return typeof clientId === "string" && !IDENTITY_ID_RE.test(clientId);
}

// A person as shown: their chosen name (unverified, so always with the start of their id),
// or just the id. A device is its thing name, whole.
export function personLabel(clientId, name) {
  if (isDevice(clientId)) return String(clientId);
  return name ? `${name} (${shortId(clientId)})` : shortId(clientId);
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });

export function formatTime(ts) {
  return timeFormat.format(new Date(ts));
}

export function dayKey(ts) {
  return new Date(ts).toDateString();
}

export function dayLabel(ts, now = Date.now()) {
  const key = dayKey(ts);
  if (key === dayKey(now)) return "Today";
  if (key === dayKey(now - 86400000)) return "Yesterday";
  return dayFormat.format(new Date(ts));
}

// http(s) URLs in running text; trailing punctuation stays text ("see https://x.org.").
const URL_RE = /\bhttps?:\/\/[^\s<>"]+/gi;
const TRAILING_RE = /[.,;:!?)\]}'"]+$/;

// Text and safe links, as nodes: the href is the URL as the URL parser reads it, kept only if
// its scheme is http or https, opened in a new tab with no opener and no referrer.
export function linkified(text) {
  const nodes = [];
  let at = 0;
  for (const match of text.matchAll(URL_RE)) {
    let raw = match[0];
    const trailing = raw.match(TRAILING_RE);
    if (trailing) raw = raw.slice(0, raw.length - trailing[0].length);
    let url = null;
    try {
      url = new URL(raw);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) continue;
    if (match.index > at) nodes.push(document.createTextNode(text.slice(at, match.index)));
    const link = el("a", { href: url.href, rel: "noopener noreferrer", target: "_blank" });
    link.textContent = raw;
    nodes.push(link);
    at = match.index + raw.length;
  }
  if (at < text.length) nodes.push(document.createTextNode(text.slice(at)));
  return nodes;
}

// One message. `continued` hides the sender and time visually (a screen reader still reads
// them) when the same sender spoke within a few minutes; `pending` marks a message of ours
// that the backend has not carried back yet. `people` names the sender (a Directory); mine
// get Edit and Delete buttons (their clicks are handled by the page, by data-action).
export function messageItem(message, me, { continued = false, pending = false, people = null } = {}) {
  if (message.system) return systemItem(message);
  const mine = message.sender === me;
  const device = people ? people.isDevice(message.sender) : isDevice(message.sender);
  const guest = people ? people.isGuest(message.sender) : false;
  const time = el("time", { datetime: new Date(message.ts).toISOString() });
  time.textContent = formatTime(message.ts);
  const sender = el("span", { class: "sender", title: String(message.sender) });
  sender.textContent = mine ? "you" : people ? people.label(message.sender) : personLabel(message.sender, message.name);
  const meta = el("span", { class: "meta" }, sender);
  if (device) meta.append(el("span", { class: "kind", title: "a device, not a person" }, "device"));
  if (guest && !mine) meta.append(el("span", { class: "kind guest", title: "a guest: anyone could be behind this name" }, "guest"));
  meta.append(" ", time);
  const deleted = typeof message.deleted === "number";
  const text = deleted
    ? el("span", { class: "text deleted" }, "message deleted")
    : el("span", { class: "text" }, ...linkified(String(message.body)));
  const classes = ["message"];
  if (mine) classes.push("mine");
  if (device) classes.push("from-device");
  if (continued) classes.push("continued");
  if (pending) classes.push("pending");
  if (deleted) classes.push("deleted");
  const item = el("li", { class: classes.join(" "), dataset: { id: message.id, sender: message.sender } }, meta, text);
  if (typeof message.edited === "number" && !deleted) item.append(el("span", { class: "state" }, "(edited)"));
  if (pending) item.append(el("span", { class: "state" }, "sending…"));
  if (message.failed) item.append(el("span", { class: "state failed" }, "not sent"));
  if (mine && !pending && !deleted && !message.failed) {
    item.append(
      el("span", { class: "actions" },
        el("button", { type: "button", class: "edit", dataset: { action: "edit" }, "aria-label": "Edit this message" }, "Edit"),
        el("button", { type: "button", class: "delete", dataset: { action: "delete" }, "aria-label": "Delete this message" }, "Delete"),
      ),
    );
  }
  return item;
}

// A line the backend says about a group (who joined, left, was invited...), not a message.
function systemItem(message) {
  const time = el("time", { datetime: new Date(message.ts).toISOString() }, formatTime(message.ts));
  return el("li", { class: "system", dataset: { id: message.id } }, el("span", { class: "text" }, message.body), " ", time);
}

export function daySeparator(ts) {
  const item = el("li", { class: "day" });
  item.textContent = dayLabel(ts);
  return item;
}

// Consecutive messages of one sender within this long are grouped under one header.
export const GROUP_WITHIN_MS = 5 * 60 * 1000;

// The list items for a conversation: day separators between days, grouped messages.
export function messageItems(messages, me, people = null) {
  const items = [];
  let previous = null;
  for (const m of messages) {
    const newDay = !previous || dayKey(previous.ts) !== dayKey(m.ts);
    if (newDay) items.push(daySeparator(m.ts));
    const continued =
      !newDay && !m.system && !previous.system && previous.sender === m.sender && m.ts - previous.ts < GROUP_WITHIN_MS;
    items.push(messageItem(m, me, { continued, pending: Boolean(m.pending), people }));
    previous = m;
  }
  return items;
}

export function clear(node) {
  node.replaceChildren();
}
