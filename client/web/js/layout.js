// The two drawers of the phone layout: the room list (left) and the people (right). From
// tablet width up both are columns and the toggles are hidden by the style sheet; here only
// their open state, focus and Escape are handled, so keyboard users can open, use and close
// them.

const $ = (id) => document.getElementById(id);

const DRAWERS = { sidebar: "rooms-toggle", people: "people-toggle" };

export function isNarrow() {
  return window.matchMedia("(max-width: 767px)").matches;
}

export function setDrawer(id, open) {
  const drawer = $(id);
  const toggle = $(DRAWERS[id]);
  const wasOpen = drawer.classList.contains("open");
  drawer.classList.toggle("open", open);
  toggle.setAttribute("aria-expanded", String(open));
  const anyOpen = Object.keys(DRAWERS).some((d) => $(d).classList.contains("open"));
  $("scrim").hidden = !anyOpen;
  if (open && !wasOpen) {
    const first = drawer.querySelector("button, input, [tabindex]");
    if (first) first.focus();
  } else if (!open && wasOpen && drawer.contains(document.activeElement)) {
    toggle.focus();
  }
}

export function closeDrawers() {
  for (const id of Object.keys(DRAWERS)) setDrawer(id, false);
}

export function wireDrawers() {
  for (const [id, toggleId] of Object.entries(DRAWERS)) {
    $(toggleId).addEventListener("click", () => {
      const open = !$(id).classList.contains("open");
      for (const other of Object.keys(DRAWERS)) if (other !== id) setDrawer(other, false);
      setDrawer(id, open);
    });
  }
  $("scrim").addEventListener("click", closeDrawers);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeDrawers();
  });
  // Growing past the phone width turns the drawers into columns: nothing stays "open".
  window.matchMedia("(max-width: 767px)").addEventListener("change", closeDrawers);
}

export function showDrawerToggles(show) {
  for (const toggleId of Object.values(DRAWERS)) $(toggleId).hidden = !show;
  if (!show) closeDrawers();
}
