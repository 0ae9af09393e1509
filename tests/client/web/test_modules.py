"""The web client's timing rules, run in the browser on the modules the page itself loads:
credentials renewed before they expire (an ID token refreshed first), and reconnect delays
that grow exponentially with jitter up to a cap."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest

pytest.importorskip("playwright", reason="playwright is a dev extra")

from tests.e2e.web.pages import Tab

NewTab = Callable[[str], Tab]

RENEWAL = """
async () => {
  const { Session, RENEW_BEFORE_MS } = await import("/js/cognito.js");
  const jwt = (exp) => "h." + btoa(JSON.stringify({ exp })) + ".s";
  const calls = [];
  let lifetime = 3600 * 1000;
  const cognito = {
    async credentialsFor(identityId, logins) {
      calls.push(["credentials", identityId, logins && Object.values(logins)[0]]);
      return { accessKeyId: "K" + calls.length, expiresAt: Date.now() + lifetime };
    },
    async refresh(refreshToken) {
      calls.push(["refresh", refreshToken]);
      return { IdToken: jwt(Date.now() / 1000 + 3600), RefreshToken: refreshToken };
    },
    loginsFor: (idToken) => ({ provider: idToken }),
  };
  const oldToken = jwt(Date.now() / 1000 + 60);  // expires within the renewal window
  const user = new Session(cognito, {
    kind: "user", identityId: "id-1", tokens: { IdToken: oldToken, RefreshToken: "R" },
  });
  const first = await user.fresh();
  const cached = await user.fresh();
  lifetime = RENEW_BEFORE_MS - 1000;  // the next credentials are already near expiry
  user.credentials = null;
  const shortLived = await user.fresh();
  const renewed = await user.fresh();
  sessionStorage.clear();
  return {
    calls: calls.map((c) => c.slice(0, 2)),
    refreshedTokenUsed: calls[1][2] !== oldToken,
    keys: [first.accessKeyId, cached.accessKeyId, shortLived.accessKeyId, renewed.accessKeyId],
  };
}
"""

BACKOFF = """
async () => {
  const { backoffDelay, BACKOFF_FIRST_MS, BACKOFF_MAX_MS } = await import("/js/connection.js");
  const rows = [];
  for (let attempt = 0; attempt < 12; attempt++) {
    const samples = Array.from({ length: 200 }, () => backoffDelay(attempt));
    rows.push({
      cap: Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt),
      min: Math.min(...samples), max: Math.max(...samples),
      distinct: new Set(samples).size,
    });
  }
  return rows;
}
"""


def test_credentials_are_renewed_before_they_expire(tabs: NewTab) -> None:
    tab = tabs("modules").open()
    result = tab.page.evaluate(RENEWAL)
    assert result["calls"] == [
        ["refresh", "R"],  # the ID token was about to expire: refreshed first
        ["credentials", "id-1"],
        ["credentials", "id-1"],  # forced renewal
        ["credentials", "id-1"],  # near expiry: renewed again, not reused
    ]
    assert result["refreshedTokenUsed"]
    assert result["keys"] == ["K2", "K2", "K3", "K4"]


def test_reconnect_delays_grow_with_jitter_up_to_a_cap(tabs: NewTab) -> None:
    tab = tabs("modules").open()
    rows = tab.page.evaluate(BACKOFF)
    caps = [row["cap"] for row in rows]
    assert caps[0] == 500 and caps[-1] == 30_000
    assert all(later >= earlier for earlier, later in pairwise(caps))
    for row in rows:
        assert row["cap"] / 2 <= row["min"] <= row["max"] <= row["cap"]
        assert row["distinct"] > 20  # jittered, not a fixed schedule


WORKER_INTERVALS = """
async () => {
  const { WorkerIntervals } = await import("/js/connection.js");
  const timers = new WorkerIntervals();
  let ticks = 0;
  const id = await new Promise((resolve) => {
    const id = timers.set(() => { ticks += 1; if (ticks === 3) resolve(id); }, 20);
  });
  timers.clear(id);
  const atClear = ticks;
  await new Promise((resolve) => setTimeout(resolve, 200));
  return { inWorker: timers.worker !== null, atClear, after: ticks };
}
"""


def test_keepalive_timers_run_in_a_worker_the_csp_allows(tabs: NewTab) -> None:
    """A hidden tab's timers are throttled; the keep-alive runs in a same-origin worker."""
    tab = tabs("modules").open()
    result = tab.page.evaluate(WORKER_INTERVALS)
    assert result["inWorker"]
    assert result["atClear"] >= 3
    assert result["after"] <= result["atClear"] + 1  # cleared: at most one tick in flight
