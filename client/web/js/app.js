// The page: sign-in screens, then the chat, wired to the connection and the state.

import { Cognito, CognitoError, Session } from "./cognito.js";
import { Connection } from "./connection.js";
import { ChatState } from "./state.js";
import { clear, el, messageItem, personLabel, shortId } from "./view.js";

const $ = (id) => document.getElementById(id);
const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const CLIENT_ID_RE = /^[A-Za-z0-9:_-]{1,128}$/;
const DEFAULT_ROOM = "lobby";
const HISTORY_LIMIT = 50;
const NAME_KEY = "iotchat.name";

let config;
let cognito;
let session = null;
let connection = null;
let state = null;
let active = null; // the conversation on screen

function notice(text) {
  $("notice").textContent = text;
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
}

function authError(err) {
  const text = err instanceof CognitoError ? `${err.message}` : String(err.message || err);
  $("auth-error").textContent = text;
}

async function busy(form, work) {
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => (b.disabled = true));
  $("auth-error").textContent = "";
  try {
    await work();
  } catch (err) {
    authError(err);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
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
  $("sign-up-form").addEventListener("submit", (e) => {
    e.preventDefault();
    busy(e.target, async () => {
      const email = $("sign-up-email").value.trim();
      await cognito.signUp(email, $("sign-up-password").value);
      $("confirm-email").textContent = email;
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
  session = null;
  state = null;
  active = null;
  showAuth();
}

// ------------------------------------------------------------------ the chat

function enter(newSession) {
  session = newSession;
  session.save();
  state = new ChatState(session.identityId);
  $("auth").hidden = true;
  $("chat").hidden = false;
  $("sign-out").hidden = false;
  $("who-am-i").textContent =
    session.kind === "user" ? `signed in as ${session.email}` : "guest";
  $("my-id").textContent = session.identityId;

  const rooms = loadList("rooms").filter((r) => ROOM_RE.test(r));
  for (const room of rooms.length ? rooms : [DEFAULT_ROOM]) state.get("room", room);
  for (const other of loadList("dms")) if (CLIENT_ID_RE.test(other)) state.get("dm", other);
  for (const g of loadList("groups")) {
    if (g && typeof g.id === "string") {
      state.groups.set(g.id, { name: String(g.name || g.id), owner: null, members: [] });
      state.get("group", g.id, String(g.name || g.id));
    }
  }
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
  connection.addEventListener("message", (e) => onMessage(e.detail.topic, e.detail.message));
  connection.start();
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
// who is online is asked again, and direct and group conversations get their newest page.
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
  if (reconnect) notice("Reconnected.");
  renderPeople();
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
    case "error":
      notice(`Error ${String(m.code)}: ${String(m.message || "")}`);
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
  if (conv.add([m])) {
    if (conv === active) appendMessages();
    else conv.unread += 1;
    if (conv.kind !== "room") saveLists();
    renderSidebar();
  }
}

function onHistory(m) {
  if (!Array.isArray(m.messages)) return;
  let conv;
  if (typeof m.room === "string") conv = state.find("room", m.room);
  else if (typeof m.with === "string") conv = state.get("dm", m.with);
  else if (typeof m.group === "string") conv = state.find("group", m.group);
  if (!conv) return;
  const before = conv === active ? scrollAnchor() : null;
  conv.addPage(m.messages.filter(isMessage), typeof m.cursor === "string" ? m.cursor : null);
  if (conv === active) {
    renderMessages(before);
  }
}

function onPresence(m) {
  if (typeof m.room !== "string" || typeof m.clientId !== "string") return;
  const conv = state.find("room", m.room);
  if (!conv) return;
  if (conv.setPresence(m.clientId, m.status === "online" ? "online" : "offline", m.name, Number(m.ts) || 0) && conv === active) {
    renderPeople();
  }
}

function onWho(m) {
  if (typeof m.room !== "string" || !Array.isArray(m.online)) return;
  const conv = state.find("room", m.room);
  if (!conv) return;
  conv.setOnline(m.online.filter((e) => e && typeof e.clientId === "string"), 0);
  if (conv === active) renderPeople();
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

// ------------------------------------------------------------------ rendering

function listButton(conv, label) {
  const button = el("button", { type: "button", class: conv === active ? "conv active" : "conv" });
  button.textContent = conv.unread ? `${label} (${conv.unread})` : label;
  button.addEventListener("click", () => open(conv));
  return el("li", {}, button);
}

function renderSidebar() {
  const rooms = $("rooms");
  clear(rooms);
  for (const conv of state.list("room")) {
    const leave = el("button", { type: "button", class: "leave", title: "Leave room" }, "×");
    leave.addEventListener("click", () => leaveRoom(conv));
    const item = listButton(conv, `#${conv.id}`);
    item.append(leave);
    rooms.append(item);
  }
  const dms = $("dms");
  clear(dms);
  for (const conv of state.list("dm")) {
    dms.append(listButton(conv, personLabel(conv.id, nameOf(conv.id))));
  }
  const groups = $("groups");
  clear(groups);
  for (const conv of state.list("group")) groups.append(listButton(conv, conv.title));
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
  $("text").focus();
}

function renderConversation() {
  const title = $("conv-title");
  if (active.kind === "room") title.textContent = `#${active.id}`;
  else if (active.kind === "dm") title.textContent = `Direct: ${personLabel(active.id, nameOf(active.id))}`;
  else title.textContent = `Group: ${active.title}`;
  renderMessages(null, true);
  renderPeople();
}

// Where the reader is, so a page of older messages does not move what they are looking at.
function scrollAnchor() {
  const pane = $("messages-pane");
  return { fromBottom: pane.scrollHeight - pane.scrollTop, atBottom: pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40 };
}

function renderMessages(anchor, toBottom = false) {
  const list = $("messages");
  const pane = $("messages-pane");
  clear(list);
  for (const m of active.messages) list.append(messageItem(m, session.identityId));
  $("older").hidden = typeof active.cursor !== "string";
  $("older").disabled = active.loadingOlder;
  if (toBottom || !anchor || anchor.atBottom) pane.scrollTop = pane.scrollHeight;
  else pane.scrollTop = pane.scrollHeight - anchor.fromBottom;
}

function appendMessages() {
  renderMessages(scrollAnchor());
}

function renderPeople() {
  const online = $("online");
  clear(online);
  $("group-admin").hidden = active.kind !== "group";
  if (active.kind === "room") {
    $("people-title").textContent = "Online here";
    for (const p of active.online()) {
      const item = el("li", { class: "person", dataset: { clientId: p.clientId } });
      const label = el("span");
      label.textContent = p.clientId === session.identityId ? `${personLabel(p.clientId, p.name)} (you)` : personLabel(p.clientId, p.name);
      item.append(label);
      if (p.clientId !== session.identityId) {
        const dm = el("button", { type: "button", class: "dm" }, "Message");
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
}

// ------------------------------------------------------------------ actions

function joinRoom(room) {
  const existing = state.find("room", room);
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

function wireChat() {
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("text").value;
    if (!text.trim()) return;
    const body = { type: "message", id: newId(), text };
    const name = displayName();
    if (name) body.name = name;
    if (active.kind === "room") body.room = active.id;
    else if (active.kind === "dm") body.to = active.id;
    else body.group = active.id;
    if (send(body)) $("text").value = "";
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
    if ($("messages-pane").scrollTop === 0 && !$("older").hidden && !active.loadingOlder) $("older").click();
  });
  onSubmitText("join-form", "join-room", (room) => {
    if (!ROOM_RE.test(room)) return notice("Room names are 1-64 letters, digits, _ or -.");
    joinRoom(room);
    return true;
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
