// The developer page: rules, functions, tables, clients and the live trace of the running stack.
// Everything the stack says is rendered with textContent, never as markup.

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const KEEP_LINES = 1000;

let after = 0;
let topicFilter = "";
let polling = null;

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) {
    showLogin();
    return null;
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "—" : String(text);
  return td;
}

function fill(tableId, rows) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren(
    ...rows.map((values) => {
      const tr = document.createElement("tr");
      tr.append(...values.map(cell));
      return tr;
    }),
  );
}

function shortAction(name) {
  const short = name.replace(/Action$/, "");
  return short === "DynamoDBv2" ? "dynamoDBv2" : short.charAt(0).toLowerCase() + short.slice(1);
}

// One trace step as a line, as `iotchat trace` prints it.
function describe(entry) {
  const time = String(entry.timestamp || "").slice(11);
  const trace = String(entry.traceId || "").slice(0, 8);
  const failed = entry.status === "Failure";
  let text;
  switch (entry.eventType) {
    case "Publish-In":
      text = `publish ${entry.topicName} from ${entry.clientId} (${entry.bytes} B, ${entry.source}) ${entry.payload || ""}`;
      break;
    case "RuleMatch":
      text = `${entry.ruleName} ${failed ? "SQL failed" : "matched"}`;
      break;
    case "RuleExecution": {
      const target = Object.values(entry.resources || {}).join(", ");
      const prefix = entry.errorAction ? "errorAction " : "";
      text = `${entry.ruleName} -> ${prefix}${shortAction(entry.ruleAction || "")} ${target} ${failed ? "FAILED" : "ok"} (${entry.durationMs} ms)`;
      break;
    }
    case "FunctionExecution":
      text = `-> ${entry.functionName} (request ${String(entry.requestId || "").slice(0, 8)}) ${failed ? "FAILED" : "ok"} ${Math.round(entry.durationMs)} ms`;
      break;
    default:
      text = String(entry.eventType);
  }
  if (failed && entry.details) text += `: ${entry.details}`;
  return `${time} ${trace} ${text}`;
}

function addTrace(entries) {
  const list = $("trace");
  for (const entry of entries) {
    const li = document.createElement("li");
    li.textContent = describe(entry);
    li.dataset.trace = entry.traceId;
    if (entry.eventType !== "Publish-In") li.classList.add("step");
    if (entry.status === "Failure" || entry.errorAction) li.classList.add("failed");
    list.append(li);
  }
  while (list.children.length > KEEP_LINES) list.firstElementChild.remove();
  if (entries.length) list.lastElementChild.scrollIntoView({ block: "nearest" });
}

async function refreshOverview() {
  const overview = await api("/_iotchat/api/overview");
  if (!overview) return false;
  fill("rules", overview.rules.map((r) => [r.name, r.actions.map(shortAction).join(", "), r.errorAction && shortAction(r.errorAction), r.matched, r.failed]));
  fill("functions", overview.functions.map((f) => [f.name, f.handler, f.warmWorkers]));
  fill("tables", overview.tables.map((t) => [t.name, t.items === null ? `unreadable: ${t.error}` : `${t.items}${t.more ? "+" : ""}`]));
  fill("clients", overview.clients.map((c) => [c.clientId, c.listener, c.subscriptions.join("  ")]));
  return true;
}

async function pollTrace() {
  const query = new URLSearchParams({ after: String(after) });
  if (topicFilter) query.set("topic", topicFilter);
  const page = await api(`/_iotchat/api/trace?${query}`);
  if (!page) return;
  addTrace(page.entries);
  after = Math.max(after, page.entries.length ? page.entries[page.entries.length - 1].seq : after);
}

let ticks = 0;

async function tick() {
  try {
    await pollTrace();
    // The lists change slowly (and counting a table reads it): every fifth tick.
    ticks += 1;
    if (ticks % 5 === 0 && !$("dashboard").hidden) await refreshOverview();
  } catch (error) {
    console.warn(error);
  }
}

function showLogin() {
  clearInterval(polling);
  polling = null;
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
}

async function showDashboard() {
  if (!(await refreshOverview())) return;
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("sign-out").hidden = false;
  await pollTrace();
  if (!polling) polling = setInterval(tick, POLL_MS);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const response = await fetch("/_iotchat/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ accessKeyId: $("key-id").value, secretAccessKey: $("secret").value }),
  });
  if (response.status === 204) {
    $("secret").value = "";
    await // Signed in already (a session cookie from earlier)? Asked without a 401 in the console.
fetch("/_iotchat/api/session", { credentials: "same-origin", cache: "no-store" })
  .then((response) => response.json())
  .then((session) => (session.signedIn ? showDashboard() : showLogin()))
  .catch(showLogin);
  } else {
    $("login-error").textContent = (await response.text()).trim() || `sign-in failed (${response.status})`;
  }
});

$("sign-out").addEventListener("click", async () => {
  await fetch("/_iotchat/logout", { method: "POST", credentials: "same-origin" });
  showLogin();
});

$("trace-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  topicFilter = $("topic-filter").value.trim();
  after = 0;
  $("trace").replaceChildren();
  await pollTrace();
});

$("trace-clear").addEventListener("click", () => $("trace").replaceChildren());

// Signed in already (a session cookie from earlier)? Asked without a 401 in the console.
fetch("/_iotchat/api/session", { credentials: "same-origin", cache: "no-store" })
  .then((response) => response.json())
  .then((session) => (session.signedIn ? showDashboard() : showLogin()))
  .catch(showLogin);
