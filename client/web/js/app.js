// The page: sign-in screens, then the chat, wired to the connection and the state.

import { Cognito, CognitoError, Session } from "./cognito.js";
import { Connection, SUBSCRIPTIONS_PER_CONNECTION } from "./connection.js";
import { closeDrawers, isNarrow, showDrawerToggles, wireDrawers } from "./layout.js";
import * as notifications from "./notify.js";
import { Outbox } from "./outbox.js";
import { ChatState } from "./state.js";
import { clear, el, isDevice, messageItems, personLabel, shortId } from "./view.js";

const $ = (id) => document.getElementById(id);
const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const CLIENT_ID_RE = /^[A-Za-z0-9:_-]{1,128}$/;
const DEFAULT_ROOM = "lobby";
const HISTORY_LIMIT = 50;
const NAME_KEY = "iotchat.name";
// One subscription is the inbox (direct and group messages arrive there, so groups take
// none); every other one is a room.
const MAX_ROOMS = SUBSCRIPTIONS_PER_CONNECTION - 1;
const TYPING_SEND_EVERY_MS = 3000; // a typing sign per room at most this often
const TYPING_SHOWN_MS = 6000; // how long one sign shows "is typing"
const AT_BOTTOM_PX = 40;

let config;
let cognito;
let session = null;
let connection = null;
let state = null;
let outbox = null;
let active = null; // the conversation on screen
let lastTypingSent = 0;
let ticker = null;

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

function newId() {
  return crypto.randomUUID();
}

function displayName() {
  const name = $("display-name").value.trim();
  return name ? name.slice(0, 64) : null;
}

// ------------------------------------------------------------------ persistence per identity

function storageKey(what) {
  return `iotchat.${what}.${session.identityId}`;
}

function loadList(what) {
  try {
    const value = JSON.parse(localStorage.getItem(storageKey(what)) || "[]");
    return Array.isArray(value) ? value : [];
  } catch {
    return [];
  }
}

function saveLists() {
  const rooms = state.list("room").map((c) => c.id);
  const dms = state.list("dm").map((c) => c.id);
  const groups = [...state.groups.entries()].map(([id, g]) => ({ id, name: g.name }));
  localStorage.setItem(storageKey("rooms"), JSON.stringify(rooms));
  localStorage.setItem(storageKey("dms"), JSON.stringify(dms));
  localStorage.setItem(storageKey("groups"), JSON.stringify(groups));
}

// ------------------------------------------------------------------ sign-in screens

function showAuth() {
  $("auth").hidden = false;
  $("chat").hidden = true;
  $("sign-out").hidden = true;
  $("who-am-i").textContent = "";
  showDrawerToggles(false);
  document.title = "iotchat";
}

function authError(err) {
  const text = err ? (err instanceof CognitoError ? err.message : String(err.message || err)) : "";
  $("auth-error").textContent = text;
  $("auth-error").hidden = !text;
}

async function busy(form, work) {
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));
  authError(null);
  try {
    await work();
  } catch (err) {
    authError(err);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

// Cognito's password policy, shown before the first try and ticked off while typing.
const PASSWORD_RULES = {
  length: (p) => p.length >= 8,
  lower: (p) => /[a-z]/.test(p),
  upper: (p) => /[A-Z]/.test(p),
  digit: (p) => /[0-9]/.test(p),
  symbol: (p) => /[\^$*.[\]{}()?"!@#%&/\\,><':;|_~`=+\- ]/.test(p),
};

function showPasswordRules() {
  const password = $("sign-up-password").value;
  for (const item of $("password-rules").querySelectorAll("li")) {
    item.dataset.met = String(PASSWORD_RULES[item.dataset.rule](password));
  }
}

// A local stack "mails" codes into its outbox file; on AWS a real email goes out.
function isLocalStack() {
  try {
    const host = new URL(config.apiEndpoint).hostname;
    return host === "127.0.0.1" || host === "localhost" || host === "[::1]";
  } catch {
    return false;
  }
}

function wireAuth() {
  $("display-name").value = localStorage.getItem(NAME_KEY) || "";
  $("display-name").addEventListener("change", () => {
    localStorage.setItem(NAME_KEY, $("display-name").value.trim());
  });
  $("guest").addEventListener("click", () =>
    busy($("auth"), async () => enter(await Session.guest(cognito))),
  );
  $("sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    busy(e.target, async () => {
      enter(await Session.signIn(cognito, $("sign-in-email").value.trim(), $("sign-in-password").value));
    });
  });
  $("sign-up-password").addEventListener("input", showPasswordRules);
  $("sign-up-form").addEventListener("submit", (e) => {
    e.preventDefault();
    busy(e.target, async () => {
      const email = $("sign-up-email").value.trim();
      await cognito.signUp(email, $("sign-up-password").value);
      $("confirm-email").textContent = email;
      $("code-hint").hidden = !isLocalStack();
      $("confirm-form").hidden = false;
      $("confirm-code").focus();
    });
  });
  $("confirm-form").addEventListener("submit", (e) => {
    e.preventDefault();
    busy(e.target, async () => {
      const email = $("sign-up-email").value.trim();
      await cognito.confirmSignUp(email, $("confirm-code").value.trim());
      enter(await Session.signIn(cognito, email, $("sign-up-password").value));
      $("sign-up-password").value = "";
      $("confirm-form").hidden = true;
    });
  });
  $("sign-out").addEventListener("click", signOut);
}

function signOut() {
  if (connection) connection.close();
  connection = null;
  if (session) session.forget();
  if (outbox) outbox.clear();
  if (ticker !== null) clearInterval(ticker);
  ticker = null;
  session = null;
  state = null;
  outbox = null;
  active = null;
  showStatus({ state: "offline" });
  notice("");
  showAuth();
  $("guest").focus();
}

// ------------------------------------------------------------------ the chat

function enter(newSession) {
  session = newSession;
  session.save();
  state = new ChatState(session.identityId);
  outbox = new Outbox(storageKey("outbox"));
  $("auth").hidden = true;
  $("chat").hidden = false;
  $("sign-out").hidden = false;
  showDrawerToggles(true);
  $("who-am-i").textContent = session.kind === "user" ? `signed in as ${session.email}` : "guest";
  $("my-id").textContent = session.identityId;
  showNotifyButton();

  const rooms = loadList("rooms").filter((r) => ROOM_RE.test(r)).slice(0, MAX_ROOMS);
  for (const room of rooms.length ? rooms : [DEFAULT_ROOM]) state.get("room", room);
  for (const other of loadList("dms")) if (CLIENT_ID_RE.test(other)) state.get("dm", other);
  for (const g of loadList("groups")) {
    if (g && typeof g.id === "string") {
      state.groups.set(g.id, { name: String(g.name || g.id), owner: null, members: [] });
      state.get("group", g.id, String(g.name || g.id));
    }
  }
  for (const body of outbox.bodies()) showPending(body);
  active = state.get("room", rooms[0] || DEFAULT_ROOM);
  renderSidebar();
  renderConversation();

  connection = new Connection({
    url: config.iot.url,
    region: config.region,
    session,
    topics: () => [
      `chat/in/${session.identityId}`,
      ...state.list("room").map((c) => `chat/pub/${c.id}`),
    ],
  });
  connection.addEventListener("status", (e) => showStatus(e.detail));
  connection.addEventListener("connected", (e) => onConnected(e.detail.reconnect));
  connection.addEventListener("disconnected", () => onDisconnected());
  connection.addEventListener("message", (e) => onMessage(e.detail.topic, e.detail.message));
  connection.start();
  ticker = setInterval(tick, 1000);
}

function showStatus({ state: s, retryInMs, error }) {
  const node = $("conn-status");
  node.dataset.state = s;
  if (s === "offline" && retryInMs !== undefined) {
    node.textContent = `offline, retrying in ${Math.ceil(retryInMs / 1000)} s`;
  } else {
    node.textContent = s;
  }
  if (error) notice(error);
  if (state) showOnline(s === "online");
}

// Offline, nothing can be sent and nobody's presence is known.
function showOnline(online) {
  $("text").disabled = !online;
  $("send").disabled = !online;
  $("text").placeholder = online ? "Say something (Shift+Enter for a new line)" : "Offline: waiting for the connection";
  $("presence-unknown").hidden = online || !active || active.kind !== "room";
  $("online").hidden = !online;
}

function send(body) {
  if (!connection || !connection.publish("chat/out", body)) {
    notice("Not connected: try again in a moment.");
    return false;
  }
  return true;
}

// On the first connect the rooms are joined (idempotent: it records the display name and
// sends the newest page of history); on a reconnect each room gets a `history` request for
// the newest page instead, which fills the gap (duplicates are dropped by id). Either way
// who is online is asked again, direct and group conversations get their newest page, and
// every message not yet carried back is published again with its id.
function onConnected(reconnect) {
  const name = displayName();
  for (const room of state.list("room")) {
    room.presence.clear();
    if (reconnect && room.joined) send({ type: "history", room: room.id, limit: HISTORY_LIMIT });
    else room.joined = send(name ? { type: "join", room: room.id, name } : { type: "join", room: room.id });
    send({ type: "who", room: room.id });
  }
  for (const dm of state.list("dm")) send({ type: "history", with: dm.id, limit: HISTORY_LIMIT });
  for (const group of state.list("group")) send({ type: "history", group: group.id, limit: HISTORY_LIMIT });
  for (const body of outbox.due(true)) connection.publish("chat/out", body);
  if (reconnect) notice("Reconnected.");
  else notice("");
  renderPeople();
}

function onDisconnected() {
  for (const conv of state.conversations.values()) conv.typing.clear();
  renderTyping();
}

// Once a second: resend what waited too long, and let typing signs expire.
function tick() {
  if (!state) return;
  if (connection && connection.online) {
    for (const body of outbox.due()) connection.publish("chat/out", body);
  }
  renderTyping();
}

function onMessage(topic, m) {
  switch (m.type) {
    case "message":
      onChatMessage(m);
      break;
    case "history":
      onHistory(m);
      break;
    case "presence":
      onPresence(m);
      break;
    case "who":
      onWho(m);
      break;
    case "group":
      onGroup(m);
      break;
    case "activity":
      onActivity(m);
      break;
    case "error":
      onError(m);
      break;
    default:
      break; // newer protocol types are ignored
  }
}

function isMessage(m) {
  return typeof m.id === "string" && typeof m.text === "string" && typeof m.sender === "string" && typeof m.ts === "number";
}

function onChatMessage(m) {
  if (!isMessage(m)) return;
  const conv = state.conversationOf(m);
  if (!conv) return;
  const mine = m.sender === session.identityId;
  if (mine) outbox.seen(m.id);
  const wasPending = mine && conv.messages.some((x) => x.pending && x.id === m.id);
  if (!conv.add([m])) return;
  conv.typing.delete(m.sender);
  if (conv === active) {
    appendMessages(!mine && !wasPending);
    renderTyping();
  } else if (!mine) {
    conv.unread += 1;
  }
  if (!mine) alertIfWanted(conv, m);
  if (conv.kind !== "room") saveLists();
  renderSidebar();
}

function onHistory(m) {
  if (!Array.isArray(m.messages)) return;
  let conv;
  if (typeof m.room === "string") conv = state.find("room", m.room);
  else if (typeof m.with === "string") conv = state.get("dm", m.with);
  else if (typeof m.group === "string") conv = state.find("group", m.group);
  if (!conv) return;
  const messages = m.messages.filter(isMessage);
  for (const x of messages) if (x.sender === session.identityId) outbox.seen(x.id);
  const before = conv === active ? scrollAnchor() : null;
  conv.addPage(messages, typeof m.cursor === "string" ? m.cursor : null);
  if (conv === active) renderMessages(before);
}

function onPresence(m) {
  if (typeof m.room !== "string" || typeof m.clientId !== "string") return;
  const conv = state.find("room", m.room);
  if (!conv) return;
  const status = m.status === "online" ? "online" : "offline";
  if (conv.setPresence(m.clientId, status, m.name, Number(m.ts) || 0) && conv === active) renderPeople();
}

function onWho(m) {
  if (typeof m.room !== "string" || !Array.isArray(m.online)) return;
  const conv = state.find("room", m.room);
  if (!conv) return;
  conv.setOnline(m.online.filter((e) => e && typeof e.clientId === "string"), 0);
  if (conv === active) renderPeople();
}

// Typing signs and device readings of one batch of the stream, for one room.
function onActivity(m) {
  if (typeof m.room !== "string") return;
  const conv = state.find("room", m.room);
  if (!conv) return;
  const now = Date.now();
  if (Array.isArray(m.typing)) {
    for (const who of m.typing) if (typeof who === "string") conv.setTyping(who, now + TYPING_SHOWN_MS);
  }
  let devicesChanged = false;
  if (m.telemetry && typeof m.telemetry === "object" && !Array.isArray(m.telemetry)) {
    for (const [thing, data] of Object.entries(m.telemetry)) {
      if (isDevice(thing) && data && typeof data === "object" && !Array.isArray(data)) {
        devicesChanged = conv.setDevice(thing, data, Number(m.ts) || now) || devicesChanged;
      }
    }
  }
  if (conv === active) {
    renderTyping();
    if (devicesChanged) renderDevices();
  }
}

function onError(m) {
  const code = String(m.code);
  // A message the backend refused will never be carried back: stop resending it.
  if (typeof m.ref === "string" && outbox.has(m.ref)) {
    outbox.seen(m.ref);
    for (const conv of state.conversations.values()) {
      const at = conv.messages.findIndex((x) => x.pending && x.id === m.ref);
      if (at >= 0) {
        conv.messages[at] = { ...conv.messages[at], pending: false, failed: true };
        if (conv === active) renderMessages(scrollAnchor());
      }
    }
  }
  if (code === "LIMIT_EXCEEDED") {
    notice(`You are in as many rooms as the chat allows (${MAX_ROOMS}). Leave a room to join another.`);
  } else {
    notice(`Error ${code}: ${String(m.message || "")}`);
  }
}

function onGroup(m) {
  if (typeof m.group !== "string") return;
  const members = Array.isArray(m.members) ? m.members.filter((x) => typeof x === "string") : [];
  const name = typeof m.name === "string" ? m.name : m.group;
  const isNew = !state.groups.has(m.group);
  state.groups.set(m.group, { name, owner: m.owner, members });
  const conv = state.get("group", m.group, name);
  saveLists();
  renderSidebar();
  if (isNew) send({ type: "history", group: m.group, limit: HISTORY_LIMIT });
  if (conv === active) renderConversation();
}

// A direct message, or a mention of my name, while the tab is hidden: a notification.
function alertIfWanted(conv, m) {
  const name = displayName();
  const mentioned = name && m.text.toLowerCase().includes(`@${name.toLowerCase()}`);
  if (conv.kind !== "dm" && !mentioned) return;
  const from = personLabel(m.sender, m.name);
  const where = conv.kind === "dm" ? "direct message" : conv.kind === "room" ? `#${conv.id}` : conv.title;
  notifications.notify(`${from} (${where})`, m.text, conv.key);
}

// ------------------------------------------------------------------ rendering

function listButton(conv, label) {
  const classes = ["conv"];
  if (conv === active) classes.push("active");
  if (conv.unread) classes.push("unread");
  const button = el("button", { type: "button", class: classes.join(" ") }, label);
  if (conv === active) button.setAttribute("aria-current", "true");
  if (conv.unread) {
    button.append(el("span", { class: "badge" }, String(conv.unread)));
    button.setAttribute("aria-label", `${label}, ${conv.unread} unread`);
  }
  button.addEventListener("click", () => open(conv));
  return el("li", {}, button);
}

function renderSidebar() {
  const rooms = $("rooms");
  clear(rooms);
  for (const conv of state.list("room")) {
    const leave = el("button", { type: "button", class: "leave", title: `Leave #${conv.id}`, "aria-label": `Leave #${conv.id}` }, "×");
    leave.addEventListener("click", () => leaveRoom(conv));
    const item = listButton(conv, `#${conv.id}`);
    item.append(leave);
    rooms.append(item);
  }
  const dms = $("dms");
  clear(dms);
  for (const conv of state.list("dm")) dms.append(listButton(conv, personLabel(conv.id, nameOf(conv.id))));
  const groups = $("groups");
  clear(groups);
  for (const conv of state.list("group")) groups.append(listButton(conv, conv.title));
  renderUnreadTotal();
  renderPeopleKnown();
}

function renderUnreadTotal() {
  let total = 0;
  for (const conv of state.conversations.values()) total += conv.unread;
  document.title = total ? `(${total}) iotchat` : "iotchat";
  $("rooms-toggle-unread").textContent = String(total);
  $("rooms-toggle-unread").hidden = total === 0;
}

// People this identity shares a room with (or talks to), offered when starting a direct
// conversation or inviting to a group.
function renderPeopleKnown() {
  const known = new Map();
  for (const conv of state.conversations.values()) {
    for (const [clientId, p] of conv.presence) if (clientId !== session.identityId) known.set(clientId, p.name);
    if (conv.kind === "dm") known.set(conv.id, known.get(conv.id) || null);
  }
  const list = $("people-known");
  clear(list);
  for (const [clientId, name] of known) list.append(el("option", { value: clientId, label: personLabel(clientId, name) }));
}

// The latest display name anyone used for a client id, for labelling direct conversations.
function nameOf(clientId) {
  for (const conv of state.conversations.values()) {
    const p = conv.presence.get(clientId);
    if (p && p.name) return p.name;
  }
  return null;
}

function open(conv) {
  active = conv;
  conv.unread = 0;
  renderSidebar();
  renderConversation();
  if (isNarrow()) closeDrawers();
  if (!$("text").disabled) $("text").focus();
}

function renderConversation() {
  const title = $("conv-title");
  if (active.kind === "room") title.textContent = `#${active.id}`;
  else if (active.kind === "dm") title.textContent = `Direct: ${personLabel(active.id, nameOf(active.id))}`;
  else title.textContent = `Group: ${active.title}`;
  renderMessages(null, true);
  renderPeople();
  renderTyping();
  showOnline(Boolean(connection && connection.online));
}

// Where the reader is, so a page of older messages does not move what they are looking at.
// `fromBottom` keeps the place when older messages come in above; `top` when newer ones
// come in below.
function scrollAnchor() {
  const pane = $("messages-pane");
  return {
    top: pane.scrollTop,
    fromBottom: pane.scrollHeight - pane.scrollTop,
    atBottom: pane.scrollHeight - pane.scrollTop - pane.clientHeight < AT_BOTTOM_PX,
  };
}

function startMarker() {
  if (active.kind === "room") return `This is the start of #${active.id}.`;
  if (active.kind === "dm") return `This is the start of your conversation with ${personLabel(active.id, nameOf(active.id))}.`;
  return `This is the start of the group ${active.title}.`;
}

function renderMessages(anchor, toBottom = false) {
  const list = $("messages");
  const pane = $("messages-pane");
  const pendingIds = new Set(active.messages.filter((m) => m.pending).map((m) => m.id));
  list.replaceChildren(...messageItems(active.messages, session.identityId, pendingIds));
  const marker = $("start-marker");
  marker.hidden = active.cursor !== null;
  marker.textContent = active.messages.length ? startMarker() : `No messages yet. ${startMarker()}`;
  $("older").hidden = typeof active.cursor !== "string";
  $("older").disabled = active.loadingOlder;
  if (toBottom || !anchor || anchor.atBottom) scrollToNewest();
  else if (anchor.keepTop) pane.scrollTop = anchor.top;
  else pane.scrollTop = pane.scrollHeight - anchor.fromBottom;
}

function scrollToNewest() {
  const pane = $("messages-pane");
  pane.scrollTop = pane.scrollHeight;
  $("new-pill").hidden = true;
}

// A new message: followed if the reader is at the newest, else a pill says it is there.
function appendMessages(fromOthers) {
  const anchor = { ...scrollAnchor(), keepTop: true };
  renderMessages(anchor);
  if (fromOthers && !anchor.atBottom) $("new-pill").hidden = false;
}

function renderTyping() {
  const line = $("typing");
  if (!active || active.kind !== "room") {
    line.textContent = "";
    return;
  }
  const who = active.typingNow(Date.now(), session.identityId).map((id) => personLabel(id, nameOf(id)));
  let text = "";
  if (who.length === 1) text = `${who[0]} is typing…`;
  else if (who.length === 2) text = `${who[0]} and ${who[1]} are typing…`;
  else if (who.length > 2) text = "Several people are typing…";
  if (line.textContent !== text) line.textContent = text;
}

function renderPeople() {
  const online = $("online");
  clear(online);
  $("group-admin").hidden = active.kind !== "group";
  if (active.kind === "room") {
    $("people-title").textContent = "Online here";
    for (const p of active.online()) {
      if (isDevice(p.clientId) && active.devices.has(p.clientId)) continue; // listed below
      const item = el("li", { class: "person", dataset: { clientId: p.clientId } });
      const label = el("span");
      label.textContent = p.clientId === session.identityId ? `${personLabel(p.clientId, p.name)} (you)` : personLabel(p.clientId, p.name);
      item.append(label);
      if (isDevice(p.clientId)) item.append(el("span", { class: "kind" }, "device"));
      if (p.clientId !== session.identityId) {
        const dm = el("button", { type: "button", class: "dm", "aria-label": `Message ${personLabel(p.clientId, p.name)}` }, "Message");
        dm.addEventListener("click", () => openDirect(p.clientId));
        item.append(" ", dm);
      }
      online.append(item);
    }
  } else {
    $("people-title").textContent = active.kind === "dm" ? "Direct conversation" : "Private group";
  }
  if (active.kind === "group") {
    const members = $("members");
    clear(members);
    const group = state.groups.get(active.id);
    for (const member of group ? group.members : []) {
      const item = el("li", {});
      item.textContent = member === session.identityId ? `${shortId(member)} (you)` : member;
      members.append(item);
    }
  }
  renderDevices();
  renderPeopleKnown();
}

// ------------------------------------------------------------------ devices

function duration(seconds) {
  const minutes = Math.floor(Math.max(0, seconds) / 60);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  if (days) return `${days}d ${hours}h ${minutes % 60}m`;
  if (hours) return `${hours}h ${minutes % 60}m`;
  return `${minutes}m`;
}

const num = (x) => typeof x === "number" && Number.isFinite(x);

// A reading as label/value rows; fields a device does not send are left out.
function readingRows(data) {
  const rows = [];
  if (typeof data.status === "string") rows.push(["status", data.status]);
  if (num(data.uptime)) rows.push(["uptime", duration(data.uptime)]);
  if (num(data.load1)) {
    rows.push(["load", [data.load1, data.load5, data.load15].filter(num).map((x) => x.toFixed(2)).join(" ")]);
  }
  if (num(data.memTotalMiB) && num(data.memAvailableMiB)) {
    rows.push(["memory", `${data.memTotalMiB - data.memAvailableMiB} / ${data.memTotalMiB} MiB used`]);
  }
  if (num(data.cpuTemp)) rows.push(["temperature", `${data.cpuTemp.toFixed(1)} °C`]);
  return rows;
}

function renderDevices() {
  const section = $("devices-section");
  const list = $("devices");
  clear(list);
  const devices = active && active.kind === "room" ? [...active.devices.entries()] : [];
  section.hidden = devices.length === 0;
  for (const [thing, { data, ts }] of devices.sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const details = el("dl");
    for (const [label, value] of readingRows(data)) details.append(el("dt", {}, label), el("dd", {}, value));
    const time = el("time", { datetime: new Date(ts).toISOString() }, `as of ${new Date(ts).toLocaleTimeString()}`);
    const item = el("li", { class: "device", dataset: { thing } }, el("strong", {}, thing), el("span", { class: "kind" }, "device"), " ", time, details);
    list.append(item);
  }
}

// ------------------------------------------------------------------ actions

function showPending(body) {
  const m = { ...body, sender: session.identityId, ts: Date.now(), pending: true };
  const conv = state.conversationOf(m);
  if (conv) conv.add([m]);
  return conv;
}

function joinRoom(room) {
  const existing = state.find("room", room);
  if (!existing && state.list("room").length >= MAX_ROOMS) {
    notice(
      `You are in ${MAX_ROOMS} rooms, as many as one connection can follow (AWS IoT allows ` +
        `${SUBSCRIPTIONS_PER_CONNECTION} subscriptions and one is your inbox). Leave a room to join #${room}.`,
    );
    return false;
  }
  const conv = existing || state.get("room", room);
  saveLists();
  if (!existing && connection && connection.connected) {
    // Offline, the next connect subscribes and joins (topics() lists every room).
    connection.subscribe(`chat/pub/${room}`);
    const name = displayName();
    conv.joined = send(name ? { type: "join", room, name } : { type: "join", room });
    send({ type: "who", room });
  }
  open(conv);
  return true;
}

function leaveRoom(conv) {
  send({ type: "leave", room: conv.id });
  if (connection) connection.unsubscribe(`chat/pub/${conv.id}`);
  state.remove("room", conv.id);
  saveLists();
  if (active !== conv) {
    renderSidebar();
    return;
  }
  const next = state.list("room")[0] || state.list("dm")[0] || state.list("group")[0];
  if (next) open(next);
  else joinRoom(DEFAULT_ROOM);
}

function openDirect(clientId) {
  const conv = state.find("dm", clientId) || state.get("dm", clientId);
  saveLists();
  if (conv.cursor === undefined) send({ type: "history", with: clientId, limit: HISTORY_LIMIT });
  open(conv);
}

function sendMessage() {
  const text = $("text").value;
  if (!text.trim() || !connection || !connection.online) return;
  const body = { type: "message", id: newId(), text };
  const name = displayName();
  if (name) body.name = name;
  if (active.kind === "room") body.room = active.id;
  else if (active.kind === "dm") body.to = active.id;
  else body.group = active.id;
  const sent = connection.publish("chat/out", body);
  outbox.keep({ v: 1, ...body }, sent);
  showPending(body);
  $("text").value = "";
  fitComposer();
  renderMessages(null, true);
}

function sendTyping() {
  if (active.kind !== "room" || !connection || !connection.online) return;
  const now = Date.now();
  if (now - lastTypingSent < TYPING_SEND_EVERY_MS) return;
  lastTypingSent = now;
  connection.publish("chat/stream", { type: "typing", room: active.id });
}

// The composer grows with its lines, up to the height the style sheet allows.
function fitComposer() {
  const text = $("text");
  text.style.height = "auto";
  text.style.height = `${text.scrollHeight + 2}px`;
}

function showNotifyButton() {
  const button = $("notify");
  button.hidden = !notifications.supported();
  button.textContent = notifications.enabled()
    ? "Notifications on: turn off"
    : "Notify me of direct messages and mentions";
  button.setAttribute("aria-pressed", String(notifications.enabled()));
}

function wireChat() {
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    sendMessage();
  });
  $("text").addEventListener("keydown", (e) => {
    // Enter sends, Shift+Enter is a new line (and Enter while composing with an IME is not).
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendMessage();
    }
  });
  $("text").addEventListener("input", () => {
    fitComposer();
    if ($("text").value.trim()) sendTyping();
  });
  $("older").addEventListener("click", () => {
    if (typeof active.cursor !== "string" || active.loadingOlder) return;
    const body = { type: "history", cursor: active.cursor, limit: HISTORY_LIMIT };
    body[active.kind === "room" ? "room" : active.kind === "dm" ? "with" : "group"] = active.id;
    if (send(body)) {
      active.loadingOlder = true;
      $("older").disabled = true;
    }
  });
  $("messages-pane").addEventListener("scroll", () => {
    const pane = $("messages-pane");
    if (pane.scrollTop === 0 && !$("older").hidden && !active.loadingOlder) $("older").click();
    if (scrollAnchor().atBottom) $("new-pill").hidden = true;
  });
  $("new-pill").addEventListener("click", () => {
    scrollToNewest();
    $("text").focus();
  });
  $("notify").addEventListener("click", async () => {
    await notifications.toggle();
    showNotifyButton();
  });
  onSubmitText("join-form", "join-room", (room) => {
    if (!ROOM_RE.test(room)) return notice("Room names are 1-64 letters, digits, _ or -.");
    return joinRoom(room);
  });
  onSubmitText("dm-form", "dm-to", (to) => {
    if (!CLIENT_ID_RE.test(to)) return notice("That is not a client id.");
    openDirect(to);
    return true;
  });
  onSubmitText("group-form", "group-name", (name) => name && send({ type: "create", name, id: newId() }));
  onSubmitText("invite-form", "invite-member", (member) => {
    if (!CLIENT_ID_RE.test(member) || active.kind !== "group") return notice("That is not a client id.");
    return send({ type: "invite", group: active.id, member, id: newId() });
  });
  wireDrawers();
}

// A one-field form: handle gets the field's trimmed text and returns true to empty the field.
function onSubmitText(formId, inputId, handle) {
  $(formId).addEventListener("submit", (e) => {
    e.preventDefault();
    if (handle($(inputId).value.trim())) $(inputId).value = "";
  });
}

// ------------------------------------------------------------------ start

async function main() {
  try {
    const response = await fetch("/config.json", { cache: "no-store" });
    config = await response.json();
  } catch (err) {
    notice("The page has no configuration (config.json).");
    return;
  }
  cognito = new Cognito(config);
  wireAuth();
  wireChat();
  const restored = Session.restore(cognito);
  if (restored) enter(restored);
  else showAuth();
}

main();
