// DOM building. Everything that came from the network or from a person (message text,
// display names, room and group names, client ids) goes in through textContent or an
// attribute set with setAttribute on an inert attribute: never as HTML.

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

// A person as shown: their chosen name (unverified, so always with the start of their id),
// or just the id.
export function personLabel(clientId, name) {
  return name ? `${name} (${shortId(clientId)})` : shortId(clientId);
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

export function formatTime(ts) {
  const date = new Date(ts);
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  return sameDay ? timeFormat.format(date) : `${dayFormat.format(date)} ${timeFormat.format(date)}`;
}

export function messageItem(message, me) {
  const mine = message.sender === me;
  const time = el("time", { datetime: new Date(message.ts).toISOString() });
  time.textContent = formatTime(message.ts);
  const sender = el("span", { class: "sender", title: String(message.sender) });
  sender.textContent = mine ? "you" : personLabel(message.sender, message.name);
  const text = el("span", { class: "text" });
  text.textContent = message.text;
  return el("li", { class: mine ? "message mine" : "message", dataset: { id: message.id } }, time, " ", sender, " ", text);
}

export function clear(node) {
  node.replaceChildren();
}
