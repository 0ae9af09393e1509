"""The registry watch: certificates that leave ACTIVE, here or in another process, reach the
gateway's disconnect on its loop; a certificate that stays ACTIVE never does."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path

from infra.local.ca import LocalCA
from infra.local.registry import Registry, create_device, revoke_device, watch_deactivations


def test_a_revocation_by_another_process_is_noticed_by_the_watch(
    local_ca: LocalCA, state_dir: Path, tmp_path: Path
) -> None:
    registry = Registry.open(state_dir)
    revoked = create_device(registry, local_ca, "watched", tmp_path / "watched")
    create_device(registry, local_ca, "kept", tmp_path / "kept")
    seen: list[tuple[str, ...]] = []

    async def scenario() -> None:
        got = asyncio.Event()

        def disconnect(ids: Collection[str]) -> None:
            seen.append(tuple(ids))
            got.set()

        watch = asyncio.ensure_future(watch_deactivations(registry, disconnect, interval=0.05))
        await asyncio.sleep(0.1)
        assert not seen  # nothing left ACTIVE yet
        # `iotchat device revoke` in another process: its own Registry on the same files.
        revoke_device(Registry.open(state_dir), "watched")
        await asyncio.wait_for(got.wait(), 5)
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        assert not registry.on_change  # the watch removed its listener

    asyncio.run(scenario())
    assert seen == [(revoked.certificate_id,)]
