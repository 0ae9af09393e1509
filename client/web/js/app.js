// The page: sign-in screens, then the chat, wired to the connection and the state.

import { Cognito, CognitoError, Session } from "./cognito.js";
import { Connection, SUBSCRIPTIONS_PER_CONNECTION } from "./connection.js";
import { closeDrawers, isNarrow, showDrawerToggles, wireDrawers } from "./layout.js";
import * as notifications from "./notify.js";
import { Outbox, TRANSIENT } from "./outbox.js";
import { Directory } from "./people.js";
import { ChatState } from "./state.js";
import { clear, el, messageItems } from "./view.js";

const $ = (id) => document.getElementById(id);
const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const CLIENT_ID_RE = /^[A-Za-z0-9:_-]{1,128}$/;
const HANDLE_RE = /^[a-z0-9_-]{3,32}$/; // a signed-in person's handle (guests' are generated)
const ANY_HANDLE_RE = /^[a-z0-9_-]{1,64}$/;
const PRIVATE = "chat/private"; // direct and group traffic: signed-in people only
const DEFAULT_ROOM = "lobby";
const HISTORY_LIMIT = 50;
const NAME_KEY = "iotchat.name";
// Two subscriptions are inboxes, the person's and this session's replies (direct and group
// messages arrive in the person's, so groups take none); every other one is a room.
const INBOXES = 2;
const MAX_ROOMS = SUBSCRIPTIONS_PER_CONNECTION - INBOXES;
const TYPING_SEND_EVERY_MS = 3000; // a typing sign per room at most this often
const TYPING_SHOWN_MS = 6000; // how long one sign shows "is typing"
const AT_BOTTOM_PX = 40;

let config;
let cognito;
let session = null;
let connection = null;
let state = null;
let outbox = null;
let reconnectedAt = 0; // outbox clock time of the last reconnect (see outbox.unstored)
let people = null; // the Directory: person -> stored profile
let invitations = new Map(); // group -> {name, by}
let editing = null; // {conv, id}: the message of ours the composer is changing
let pendingDm = null; // a handle typed in the direct form, waiting for its whois answer
let afterHello = null; // what the connect does once our profile is back
const HELLO_WAIT_MS = 3000;
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
      const handle = $("sign-up-handle").value.trim().replace(/^@/, "");
      if (!HANDLE_RE.test(handle) || handle.startsWith("guest-")) {
        throw new Error("A handle is 3-32 lowercase letters, digits, _ or -, and does not start with guest-.");
      }
      await cognito.signUp(email, $("sign-up-password").value, handle);
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

function isGuest() {
  return session && session.kind === "guest";
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
  people = null;
  invitations = new Map();
  editing = null;
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
  people = new Directory();
  $("auth").hidden = true;
  $("chat").hidden = false;
  $("sign-out").hidden = false;
  showDrawerToggles(true);
  $("who-am-i").textContent = session.kind === "user" ? `signed in as ${session.email}` : "guest";
  $("my-id").textContent = session.identityId;
  $("my-id").dataset.session = session.clientId;
  $("my-name").textContent = "";
  showNotifyButton();
  // Direct messages and groups are for signed-in people: a guest is told so where they are.
  for (const id of ["dm-form", "group-form", "dms-title", "dms", "groups-title", "groups", "invitations"]) {
    $(id).hidden = isGuest();
  }
  $("account-only").hidden = !isGuest();

  // Rooms and groups kept in this browser are only a cache until hello's answer says what the
  // person belongs to (onBelongings); the default room of a first visit stays only while the
  // server lists no room.
  const rooms = loadList("rooms").filter((r) => ROOM_RE.test(r)).slice(0, MAX_ROOMS);
  for (const room of rooms) state.get("room", room).cached = true;
  if (!rooms.length) state.get("room", DEFAULT_ROOM).fallback = true; // kept if the server lists none
  if (!isGuest()) {
    for (const other of loadList("dms")) if (CLIENT_ID_RE.test(other)) state.get("dm", other);
    for (const g of loadList("groups")) {
      if (g && typeof g.id === "string") {
        state.groups.set(g.id, { name: String(g.name || g.id), owner: null, members: [] });
        state.get("group", g.id, String(g.name || g.id)).cached = true;
      }
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
      `chat/in/${session.clientId}`,
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

function send(body, topic = "chat/out") {
  if (!connection || !connection.publish(topic, body)) {
    notice("Not connected: try again in a moment.");
    return false;
  }
  return true;
}

// Direct and group traffic goes through the signed-in door; a guest never knocks there.
function sendPrivate(body) {
  if (isGuest()) {
    notice("Direct messages and private groups need an account: sign out and sign up to use them.");
    return false;
  }
  return send(body, PRIVATE);
}

// Says who this session is: a guest on chat/out, a signed-in person on chat/private with the
// ID token the backend checks with Cognito. The answer is our profile (handle and name).
function sayHello() {
  const name = displayName();
  const body = { type: "hello" };
  if (name) body.name = name;
  if (isGuest()) send(body);
  else send({ ...body, token: session.tokens.IdToken }, PRIVATE);
}

function askWhois(persons) {
  for (const batch of people.unknown(persons)) send({ type: "whois", people: batch });
}

// On the first connect the rooms are joined (idempotent: it records the display name and
// sends the newest page of history); on a reconnect each room gets a `history` request for
// the newest page instead, which fills the gap (duplicates are dropped by id). Either way
// who is online is asked again, direct and group conversations get their newest page, and
// every message not yet carried back is published again with its id.
function onConnected(reconnect) {
  // Hello first, the rest once our profile is back (or after a while without it), so the
  // rooms' presence already shows the stored name and handle.
  let started = false;
  const rest = () => {
    if (started || !state) return;
    started = true;
    afterHello = null;
    resume(reconnect);
  };
  afterHello = rest;
  setTimeout(rest, HELLO_WAIT_MS);
  sayHello();
}

function resume(reconnect) {
  if (reconnect) reconnectedAt = outbox.now();
  for (const room of state.list("room")) {
    room.presence.clear();
    // A room hello's answer listed is joined already: its newest page is enough (and spares
    // the person's join budget when a page with many rooms loads).
    if ((reconnect && room.joined) || room.onServer) {
      room.joined = send({ type: "history", room: room.id, limit: HISTORY_LIMIT });
      room.checkStored = reconnect; // its page says what the room carried but did not store
    } else room.joined = send({ type: "join", room: room.id });
    room.whoAfterHistory = true;
  }
  if (!isGuest()) {
    for (const dm of state.list("dm")) sendPrivate({ type: "history", with: handleOf(dm.id), limit: HISTORY_LIMIT });
    for (const group of state.list("group")) sendPrivate({ type: "history", groupId: group.id, limit: HISTORY_LIMIT });
  }
  for (const { topic, body } of outbox.due(true)) connection.publish(topic, body);
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
    for (const { topic, body } of outbox.due()) connection.publish(topic, body);
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
    case "profile":
      onProfiles([m], false);
      break;
    case "people":
      if (Array.isArray(m.people)) onProfiles(m.people, true);
      break;
    case "invitation":
      onInvitation(m);
      break;
    case "membership":
      onMembership(m);
      break;
    case "edit":
    case "delete":
      onChange(m);
      break;
    case "error":
      onError(m);
      break;
    default:
      break; // newer protocol types are ignored
  }
}

// A chat message, or the placeholder history keeps for a deleted one.
function isMessage(m) {
  return (
    typeof m.id === "string" &&
    (typeof m.body === "string" || typeof m.deleted === "number") &&
    typeof m.sender === "string" &&
    typeof m.ts === "number"
  );
}

// Who sent it, as a history page or presence names them (never a live message's claim).
function learnFrom(person, fields, ts) {
  return people.learn(person, fields, ts);
}

// `answer`: a whois answer, which also settles a handle typed in the direct form.
function onProfiles(profiles, answer) {
  let changed = false;
  for (const p of profiles) {
    if (!p || typeof p.person !== "string") continue;
    changed = learnFrom(p.person, p, p.ts) || changed;
    if (p.person === session.identityId) {
      showMyProfile();
      if (Array.isArray(p.rooms) || Array.isArray(p.groups)) {
        onBelongings(p).then((added) => {
          if (afterHello) afterHello(); // joins every room, asks every group's history
          else catchUp(added); // the wait for hello ran out: only the new ones
        });
      } else if (afterHello) afterHello();
    }
    if (pendingDm && p.handle === pendingDm) {
      pendingDm = null;
      openDirect(p.person);
    }
  }
  if (answer && pendingDm && profiles.every((p) => !p || p.handle !== pendingDm)) {
    notice(`Nobody has the handle @${pendingDm}.`);
    pendingDm = null;
  }
  if (changed) rerender();
}

// Hello's answer lists the rooms and groups the person belongs to (docs/protocol.md): they
// join what the page shows, and what only this browser's cache remembered is dropped. Rooms
// stay within MAX_ROOMS, subscribed in chunks of at most 8 filters (connection.js).
async function onBelongings(answer) {
  const mine = state;
  const hadRooms = new Set(state.list("room").map((c) => c.id));
  const hadGroups = new Set(state.list("group").map((c) => c.id));
  if (Array.isArray(answer.rooms)) {
    const listed = answer.rooms.filter((r) => typeof r === "string" && ROOM_RE.test(r));
    const listedSet = new Set(listed);
    for (const conv of state.list("room")) {
      const stale = conv.cached || (conv.fallback && listed.length > 0);
      if (stale && !listedSet.has(conv.id)) state.remove("room", conv.id);
    }
    let over = 0;
    for (const room of listed) {
      const known = state.find("room", room);
      const conv = known || (state.list("room").length < MAX_ROOMS ? state.get("room", room) : null);
      if (!conv) over += 1;
      else Object.assign(conv, { cached: false, fallback: false, onServer: true });
    }
    if (over) notice(`You are in ${listed.length} rooms; this page follows ${MAX_ROOMS} of them (one connection's limit).`);
  }
  if (Array.isArray(answer.groups) && !isGuest()) {
    const listed = answer.groups.filter((g) => g && typeof g.groupId === "string");
    const listedIds = new Set(listed.map((g) => g.groupId));
    for (const conv of state.list("group")) {
      if (conv.cached && !listedIds.has(conv.id)) {
        state.groups.delete(conv.id);
        state.remove("group", conv.id);
      }
    }
    for (const g of listed) {
      const name = typeof g.name === "string" && g.name ? g.name : g.groupId;
      const known = state.groups.get(g.groupId);
      const owner = typeof g.owner === "string" ? g.owner : known ? known.owner : null;
      state.groups.set(g.groupId, { name, owner, members: known ? known.members : [] });
      const conv = state.get("group", g.groupId, name);
      conv.title = name;
      conv.cached = false;
      invitations.delete(g.groupId);
    }
  }
  if (!state.list("room").length && !state.list("group").length) state.get("room", DEFAULT_ROOM);
  const now = new Set(state.list("room").map((c) => c.id));
  const gone = [...hadRooms].filter((r) => !now.has(r)).map((r) => `chat/pub/${r}`);
  const added = [...now].filter((r) => !hadRooms.has(r)).map((r) => `chat/pub/${r}`);
  if (active && !state.find(active.kind, active.id)) active = state.list("room")[0] || state.list("group")[0];
  const newGroups = state.list("group").filter((c) => !hadGroups.has(c.id));
  saveLists();
  rerender();
  const result = { rooms: added.map((t) => t.slice("chat/pub/".length)), groups: newGroups };
  if (!connection) return result;
  await connection.unsubscribeMany(gone); // first, so that the total stays within the cap
  const refused = await connection.subscribeMany(added);
  if (mine === state && refused.length && connection.connected) {
    notice(`Not allowed to follow: ${refused.map((t) => t.replace("chat/pub/", "#")).join(", ")}`);
  }
  return result;
}

// Rooms and groups hello's answer added after the page had already resumed without it.
function catchUp({ rooms, groups }) {
  if (!state) return;
  for (const room of rooms) {
    const conv = state.find("room", room);
    if (!conv) continue;
    conv.joined = send({ type: "join", room });
    conv.whoAfterHistory = true;
  }
  for (const conv of groups) sendPrivate({ type: "history", groupId: conv.id, limit: HISTORY_LIMIT });
}

function showMyProfile() {
  const me = people.get(session.identityId);
  if (!me) return;
  $("my-name").textContent = people.label(session.identityId);
  if (document.activeElement !== $("my-display-name")) $("my-display-name").value = me.name || "";
}

function rerender() {
  renderSidebar();
  renderConversation(false);
}

// The handle to address a person by (the protocol still reads a person id as itself).
function handleOf(person) {
  const profile = people.get(person);
  return profile && profile.handle ? profile.handle : person;
}

function onChatMessage(m) {
  if (!isMessage(m)) return;
  const conv = state.conversationOf(m);
  if (!conv) return;
  const mine = m.sender === session.identityId;
  if (mine) outbox.seen(m.id);
  else askWhois([m.sender]);
  const wasPending = mine && conv.messages.some((x) => x.pending && x.id === m.id);
  if (!conv.add([m])) return;
  conv.typing.delete(m.sender);
  if (conv === active) {
    appendMessages(!mine && !wasPending);
    renderTyping();
    // The list is redrawn as a whole; a screen reader hears only what is new.
    if (!mine && typeof m.body === "string") $("announce").textContent = `${people.label(m.sender)}: ${m.body}`;
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
  else if (typeof m.groupId === "string") conv = state.find("group", m.groupId);
  if (!conv) return;
  const messages = m.messages.filter(isMessage);
  for (const x of messages) {
    if (x.sender === session.identityId) outbox.done(x.id);
    learnFrom(x.sender, x);
  }
  if (conv.checkStored) {
    conv.checkStored = false;
    const ours = new Set(messages.filter((x) => x.sender === session.identityId).map((x) => x.id));
    for (const { topic, body } of outbox.unstored(conv.id, ours, reconnectedAt)) connection.publish(topic, body);
  }
  // `who` answers only members: asked once the join's history shows the membership is there
  // (commands run asynchronously, so a `who` sent with the join could overtake it).
  if (conv.whoAfterHistory) {
    conv.whoAfterHistory = false;
    send({ type: "who", room: conv.id });
  }
  const before = conv === active ? scrollAnchor() : null;
  conv.addPage(messages, typeof m.cursor === "string" ? m.cursor : null);
  if (conv === active) renderMessages(before);
}

// Presence and `who` name the person (`clientId` is the same value, for older clients).
function personIn(entry) {
  if (!entry || typeof entry !== "object") return null;
  const person = typeof entry.person === "string" ? entry.person : entry.clientId;
  return typeof person === "string" ? person : null;
}

function onPresence(m) {
  const person = personIn(m);
  if (typeof m.room !== "string" || !person) return;
  const conv = state.find("room", m.room);
  if (!conv) return;
  learnFrom(person, m, Number(m.ts));
  const status = m.status === "online" ? "online" : "offline";
  if (conv.setPresence(person, status, null, Number(m.ts) || 0) && conv === active) renderPeople();
}

function onWho(m) {
  if (typeof m.room !== "string" || !Array.isArray(m.online)) return;
  const conv = state.find("room", m.room);
  if (!conv) return;
  const entries = [];
  for (const e of m.online) {
    const person = personIn(e);
    if (!person) continue;
    learnFrom(person, e);
    entries.push({ clientId: person });
  }
  conv.setOnline(entries, 0);
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
      if (people.isDevice(thing) && data && typeof data === "object" && !Array.isArray(data)) {
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
  // A message the backend could not keep right now is sent again (after `retryAfter`, when
  // given); one it refused will never be carried back: stop resending it.
  if (typeof m.ref === "string" && TRANSIENT.has(code)) {
    outbox.retry(m.ref, (Number(m.retryAfter) || 1) * 1000);
  } else if (typeof m.ref === "string" && outbox.has(m.ref)) {
    outbox.done(m.ref);
    for (const conv of state.conversations.values()) {
      const at = conv.messages.findIndex((x) => x.pending && x.id === m.ref);
      if (at >= 0) {
        conv.messages[at] = { ...conv.messages[at], pending: false, failed: true };
        if (conv === active) renderMessages(scrollAnchor());
      }
    }
  }
  if (code === "INVALID_NAME") {
    notice(`That name cannot be used: ${String(m.message || "it is empty, invisible or holds direction controls")}.`);
    showMyProfile(); // back to the stored name
  } else if (code === "SIGN_IN_REQUIRED") {
    notice("Direct messages and private groups need an account: sign out and sign up to use them.");
  } else if (code === "RATE_LIMITED") {
    notice(`Slow down a little: try again in ${Number(m.retryAfter) || 60} s.`);
  } else if (code === "LIMIT_EXCEEDED") {
    notice(`You are in as many rooms as the chat allows (${MAX_ROOMS}). Leave a room to join another.`);
  } else {
    notice(`Error ${code}: ${String(m.message || "")}`);
  }
}

// Members arrive as profiles (person ids from older backends).
function onGroup(m) {
  if (typeof m.groupId !== "string") return;
  const members = [];
  for (const x of Array.isArray(m.members) ? m.members : []) {
    const person = typeof x === "string" ? x : personIn(x);
    if (!person) continue;
    if (typeof x === "object") learnFrom(person, x);
    members.push(person);
  }
  const name = typeof m.name === "string" ? m.name : m.groupId;
  const isNew = !state.groups.has(m.groupId);
  state.groups.set(m.groupId, { name, owner: typeof m.owner === "string" ? m.owner : null, members });
  invitations.delete(m.groupId);
  const conv = state.get("group", m.groupId, name);
  saveLists();
  renderSidebar();
  if (isNew) sendPrivate({ type: "history", groupId: m.groupId, limit: HISTORY_LIMIT });
  if (conv === active) renderConversation(false);
}

function onInvitation(m) {
  if (typeof m.groupId !== "string" || state.groups.has(m.groupId)) return;
  const by = personIn(m.by);
  if (by) learnFrom(by, m.by);
  invitations.set(m.groupId, { name: typeof m.name === "string" ? m.name : m.groupId, by });
  renderSidebar();
  notice(`${by ? people.label(by) : "Someone"} invited you to the group ${typeof m.name === "string" ? m.name : m.groupId}.`);
}

const MEMBERSHIP_TEXT = {
  invited: (who, by) => `${by} invited ${who}`,
  joined: (who) => `${who} joined`,
  declined: (who) => `${who} declined the invitation`,
  left: (who) => `${who} left`,
  removed: (who, by) => `${who} was removed by ${by}`,
  renamed: (who, by, name) => `${by} renamed the group to ${name}`,
};

// A system line in the group; being removed takes the group off our list.
function onMembership(m) {
  if (typeof m.groupId !== "string" || !(m.event in MEMBERSHIP_TEXT)) return;
  const person = personIn(m.person);
  const by = personIn(m.by);
  if (person) learnFrom(person, m.person);
  if (by) learnFrom(by, m.by);
  const label = (p) => (!p ? "someone" : p === session.identityId ? "you" : people.label(p));
  if (m.event === "removed" && person === session.identityId) {
    state.groups.delete(m.groupId);
    state.remove("group", m.groupId);
    saveLists();
    if (active && active.kind === "group" && active.id === m.groupId) open(state.list("room")[0] || state.get("room", DEFAULT_ROOM));
    else renderSidebar();
    notice("You were removed from a group.");
    return;
  }
  const conv = state.find("group", m.groupId);
  if (!conv) return;
  const ts = Number(m.ts) || Date.now();
  const text = MEMBERSHIP_TEXT[m.event](label(person), label(by), String(m.name || ""));
  conv.add([{ system: true, id: `membership-${m.event}-${person}-${ts}`, sender: "", body: text, ts }]);
  if (m.event === "renamed" && typeof m.name === "string") conv.title = m.name;
  if (conv === active) renderConversation(false);
  renderSidebar();
}

// Someone edited or deleted a message (only its sender can).
function onChange(m) {
  if (typeof m.id !== "string" || typeof m.sender !== "string") return;
  const conv = state.conversationOf(m);
  if (!conv) return;
  const fields = m.type === "edit" ? { body: String(m.body), edited: Number(m.edited) || Date.now() } : { deleted: Number(m.deleted) || Date.now() };
  if (conv.change(m.sender, m.id, fields) && conv === active) renderMessages({ ...scrollAnchor(), keepTop: true });
}

// A direct message, or a mention of my name, while the tab is hidden: a notification.
function alertIfWanted(conv, m) {
  const me = people.get(session.identityId);
  const names = [displayName(), me && me.handle, me && me.name].filter(Boolean).map((n) => `@${n.toLowerCase()}`);
  const text = m.body.toLowerCase();
  const mentioned = names.some((n) => text.includes(n));
  if (conv.kind !== "dm" && !mentioned) return;
  const from = people.label(m.sender);
  const where = conv.kind === "dm" ? "direct message" : conv.kind === "room" ? `#${conv.id}` : conv.title;
  notifications.notify(`${from} (${where})`, m.body, conv.key);
}

// ------------------------------------------------------------------ rendering

function listButton(conv, label) {
  const classes = ["conv"];
  if (conv === active) classes.push("active");
  if (conv.unread) classes.push("unread");
  const button = el("button", { type: "button", class: classes.join(" "), dataset: { key: conv.key } }, label);
  if (conv === active) button.setAttribute("aria-current", "true");
  if (conv.unread) {
    button.append(el("span", { class: "badge" }, String(conv.unread)));
    button.setAttribute("aria-label", `${label}, ${conv.unread} unread`);
  }
  button.addEventListener("click", () => open(conv));
  return el("li", {}, button);
}

// The lists are rebuilt as a whole; a keyboard user's focus stays on the same entry.
function renderSidebar() {
  const focused = document.activeElement;
  const focusKey = focused && $("sidebar").contains(focused) ? focused.dataset.key : undefined;
  drawSidebar();
  if (focusKey) {
    const again = [...$("sidebar").querySelectorAll("[data-key]")].find((b) => b.dataset.key === focusKey);
    if (again) again.focus();
  }
}

function drawSidebar() {
  const rooms = $("rooms");
  clear(rooms);
  for (const conv of state.list("room")) {
    const leave = el("button", { type: "button", class: "leave", title: `Leave #${conv.id}`, "aria-label": `Leave #${conv.id}`, dataset: { key: `leave:${conv.key}` } }, "×");
    leave.addEventListener("click", () => leaveRoom(conv));
    const item = listButton(conv, `#${conv.id}`);
    item.append(leave);
    rooms.append(item);
  }
  const dms = $("dms");
  clear(dms);
  for (const conv of state.list("dm")) dms.append(listButton(conv, people.label(conv.id)));
  const groups = $("groups");
  clear(groups);
  for (const conv of state.list("group")) groups.append(listButton(conv, conv.title));
  renderInvitations();
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

function renderInvitations() {
  const list = $("invitations");
  clear(list);
  for (const [group, { name, by }] of invitations) {
    const accept = el("button", { type: "button", class: "accept", "aria-label": `Accept the invitation to ${name}` }, "Accept");
    const decline = el("button", { type: "button", class: "decline", "aria-label": `Decline the invitation to ${name}` }, "Decline");
    accept.addEventListener("click", () => answerInvitation(group, "accept"));
    decline.addEventListener("click", () => answerInvitation(group, "decline"));
    const text = el("span", {}, `${name}, from ${by ? people.label(by) : "someone"}`);
    list.append(el("li", { class: "invitation", dataset: { group } }, text, " ", accept, " ", decline));
  }
}

function answerInvitation(group, answer) {
  if (!sendPrivate({ type: answer, groupId: group, id: newId() })) return;
  invitations.delete(group);
  renderSidebar();
}

// Signed-in people this person shares a room with (or talks to), by handle: offered when
// starting a direct conversation or inviting to a group. Guests and devices are not offered.
function renderPeopleKnown() {
  const known = new Set();
  for (const conv of state.conversations.values()) {
    for (const person of conv.presence.keys()) known.add(person);
    if (conv.kind === "dm") known.add(conv.id);
  }
  const list = $("people-known");
  clear(list);
  for (const person of known) {
    const profile = people.get(person);
    if (person === session.identityId || !profile || !profile.handle || profile.guest || profile.device) continue;
    list.append(el("option", { value: `@${profile.handle}`, label: people.label(person) }));
  }
}

function open(conv) {
  if (active !== conv) stopEditing();
  active = conv;
  conv.unread = 0;
  renderSidebar();
  renderConversation();
  if (isNarrow()) closeDrawers();
  if (!$("text").disabled) $("text").focus();
}

function renderConversation(toBottom = true) {
  const title = $("conv-title");
  if (active.kind === "room") title.textContent = `#${active.id}`;
  else if (active.kind === "dm") title.textContent = `Direct: ${people.label(active.id)}`;
  else title.textContent = `Group: ${active.title}`;
  if (toBottom) renderMessages(null, true);
  else renderMessages({ ...scrollAnchor(), keepTop: true });
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
  if (active.kind === "dm") return `This is the start of your conversation with ${people.label(active.id)}.`;
  return `This is the start of the group ${active.title}.`;
}

function renderMessages(anchor, toBottom = false) {
  const list = $("messages");
  const pane = $("messages-pane");
  list.replaceChildren(...messageItems(active.messages, session.identityId, people));
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
  const who = active.typingNow(Date.now(), session.identityId).map((id) => people.label(id));
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
      const person = p.clientId;
      if (people.isDevice(person) && active.devices.has(person)) continue; // listed below
      const item = el("li", { class: "person", dataset: { clientId: person } });
      const label = el("span");
      label.textContent = person === session.identityId ? `${people.label(person)} (you)` : people.label(person);
      item.append(label);
      if (people.isDevice(person)) item.append(el("span", { class: "kind" }, "device"));
      else if (people.isGuest(person)) item.append(el("span", { class: "kind guest" }, "guest"));
      // Direct messages are between signed-in people.
      if (person !== session.identityId && !isGuest() && !people.isGuest(person) && !people.isDevice(person)) {
        const dm = el("button", { type: "button", class: "dm", "aria-label": `Message ${people.label(person)}` }, "Message");
        dm.addEventListener("click", () => openDirect(person));
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
    const mine = group && group.owner === session.identityId;
    for (const member of group ? group.members : []) {
      const item = el("li", { dataset: { person: member } });
      item.append(member === session.identityId ? `${people.label(member)} (you)` : people.label(member));
      if (group.owner === member) item.append(el("span", { class: "kind" }, "creator"));
      if (mine && member !== session.identityId) {
        const remove = el("button", { type: "button", class: "remove", "aria-label": `Remove ${people.label(member)} from the group` }, "Remove");
        remove.addEventListener("click", () => sendPrivate({ type: "remove", groupId: active.id, member: handleOf(member), id: newId() }));
        item.append(" ", remove);
      }
      members.append(item);
    }
    $("leave-group").hidden = Boolean(mine); // the creator cannot leave, but renames
    $("rename-form").hidden = !mine;
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
  if (typeof m.recipient === "string" && !m.recipient.includes(":")) {
    const profile = people.byHandle(m.recipient); // a direct message addressed by handle
    if (profile) m.recipient = profile.person;
  }
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
    conv.joined = send({ type: "join", room });
    conv.whoAfterHistory = true;
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

function openDirect(person) {
  if (isGuest()) return sendPrivate({});
  const conv = state.find("dm", person) || state.get("dm", person);
  saveLists();
  if (conv.cursor === undefined) sendPrivate({ type: "history", with: handleOf(person), limit: HISTORY_LIMIT });
  open(conv);
  return true;
}

// Where a message or an edit of the active conversation goes: the field naming it, the topic.
function target(conv) {
  if (conv.kind === "room") return [{ room: conv.id }, "chat/out"];
  if (conv.kind === "dm") return [{ recipient: handleOf(conv.id) }, PRIVATE];
  return [{ groupId: conv.id }, PRIVATE];
}

function sendMessage() {
  const text = $("text").value;
  if (!text.trim() || !connection || !connection.online) return;
  if (editing) return saveEdit(text);
  if (active.kind !== "room" && isGuest()) return sendPrivate({});
  const [where, topic] = target(active);
  const body = { v: 1, type: "message", id: newId(), body: text, ...where };
  const sent = connection.publish(topic, body);
  outbox.keep(topic, body, sent);
  showPending(body);
  $("text").value = "";
  fitComposer();
  renderMessages(null, true);
}

// ------------------------------------------------------------------ editing our messages

function startEditing(id) {
  const message = active.messages.find((m) => m.id === id && m.sender === session.identityId);
  if (!message || typeof message.body !== "string") return;
  editing = { conv: active, id };
  $("text").value = message.body;
  $("editing").hidden = false;
  fitComposer();
  $("text").focus();
}

function stopEditing() {
  if (!editing) return;
  editing = null;
  $("editing").hidden = true;
  $("text").value = "";
  fitComposer();
}

function changeTarget(conv) {
  if (conv.kind === "room") return [{ room: conv.id }, "chat/out"];
  if (conv.kind === "dm") return [{ with: handleOf(conv.id) }, PRIVATE];
  return [{ groupId: conv.id }, PRIVATE];
}

function saveEdit(text) {
  const [where, topic] = changeTarget(editing.conv);
  if (send({ type: "edit", id: editing.id, body: text, sender: session.identityId, ...where }, topic)) stopEditing();
}

function deleteMessage(button, id) {
  // The first click asks; the second deletes for everyone.
  if (button.dataset.confirm !== "yes") {
    button.dataset.confirm = "yes";
    button.textContent = "Delete for everyone?";
    return;
  }
  const [where, topic] = changeTarget(active);
  send({ type: "delete", id, sender: session.identityId, ...where }, topic);
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
    } else if (e.key === "Escape" && editing) {
      e.stopPropagation();
      stopEditing();
    }
  });
  $("messages").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    const item = button && button.closest("li.message");
    if (!item) return;
    if (button.dataset.action === "edit") startEditing(item.dataset.id);
    else deleteMessage(button, item.dataset.id);
  });
  $("leave-group").addEventListener("click", () => {
    if (active.kind !== "group" || !sendPrivate({ type: "leave", groupId: active.id, id: newId() })) return;
    state.groups.delete(active.id);
    state.remove("group", active.id);
    saveLists();
    open(state.list("room")[0] || state.get("room", DEFAULT_ROOM));
  });
  $("text").addEventListener("input", () => {
    fitComposer();
    if ($("text").value.trim()) sendTyping();
  });
  $("older").addEventListener("click", () => {
    if (typeof active.cursor !== "string" || active.loadingOlder) return;
    const body = { type: "history", cursor: active.cursor, limit: HISTORY_LIMIT };
    body[active.kind === "room" ? "room" : active.kind === "dm" ? "with" : "groupId"] = active.id;
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
  onSubmitText("name-form", "my-display-name", (name) => {
    if (!name) return notice("A display name cannot be empty.");
    localStorage.setItem(NAME_KEY, name);
    $("display-name").value = name; // said with hello from now on
    send({ type: "name", name, id: newId() });
    $("my-display-name").blur();
    return false; // keep it shown: the profile answer confirms it
  });
  onSubmitText("join-form", "join-room", (room) => {
    if (!ROOM_RE.test(room)) return notice("Room names are 1-64 letters, digits, _ or -.");
    return joinRoom(room);
  });
  onSubmitText("dm-form", "dm-to", (typed) => {
    const handle = typed.replace(/^@/, "");
    if (!ANY_HANDLE_RE.test(handle)) return notice("A handle is letters, digits, _ or -, like @ada.");
    const known = people.byHandle(handle);
    if (known) return openDirect(known.person);
    pendingDm = handle; // opened when the whois answer names the person
    return send({ type: "whois", people: [handle] });
  });
  onSubmitText("group-form", "group-name", (name) => name && sendPrivate({ type: "create", name, id: newId() }));
  onSubmitText("rename-form", "group-rename", (name) => {
    if (!name || active.kind !== "group") return false;
    return sendPrivate({ type: "rename", groupId: active.id, name, id: newId() });
  });
  onSubmitText("invite-form", "invite-member", (typed) => {
    const handle = typed.replace(/^@/, "");
    if (!ANY_HANDLE_RE.test(handle) || active.kind !== "group") return notice("A handle is letters, digits, _ or -, like @ada.");
    return sendPrivate({ type: "invite", groupId: active.id, member: handle, id: newId() });
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
