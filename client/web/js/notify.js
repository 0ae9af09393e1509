// Opt-in browser notifications: a direct message or a mention while the tab is hidden. The
// person turns them on with a button (the browser asks for permission then, never on load);
// the choice is kept in localStorage, per browser.

const KEY = "iotchat.notify";

export function supported() {
  return typeof window.Notification === "function";
}

export function enabled() {
  return supported() && Notification.permission === "granted" && localStorage.getItem(KEY) === "on";
}

// Turns notifications on (asking the browser if needed) or off; returns whether they are on.
export async function toggle() {
  if (!supported()) return false;
  if (enabled()) {
    localStorage.setItem(KEY, "off");
    return false;
  }
  const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
  localStorage.setItem(KEY, permission === "granted" ? "on" : "off");
  return permission === "granted";
}

// Shown only while the page is hidden: a visible tab already shows the message.
export function notify(title, body, tag) {
  if (!enabled() || document.visibilityState !== "hidden") return false;
  const note = new Notification(title, { body: body.slice(0, 200), tag });
  note.onclick = () => window.focus();
  return true;
}
