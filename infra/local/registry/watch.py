"""Revocation reaches live connections: certificates that leave ACTIVE are disconnected.

AWS IoT closes the connections of a certificate set to INACTIVE or REVOKED shortly after
``UpdateCertificate`` (https://docs.aws.amazon.com/iot/latest/apireference/API_UpdateCertificate.html:
"Certificates must be in the ACTIVE state to authenticate devices"). The registry reports what
left ACTIVE in :class:`~.service.RegistryChange`, whether the change was made in this process
or, seen by :meth:`~.service.Registry.refresh`, by ``iotchat device revoke`` in another one;
:func:`watch_deactivations` hands those ids to the gateway on its loop and refreshes the
registry every ``interval`` seconds (one ``stat``), so another process's change is noticed
within about that long even when nobody connects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from .service import Registry, RegistryChange

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 1.0


async def watch_deactivations(
    registry: Registry,
    disconnect: Callable[[Collection[str]], object],
    interval: float = DEFAULT_INTERVAL,
) -> None:
    """Call ``disconnect(certificate_ids)`` on this loop whenever certificates leave ACTIVE,
    until cancelled."""
    loop = asyncio.get_running_loop()

    def changed(change: RegistryChange) -> None:
        # The change may come from any thread that touched the registry.
        if change.deactivated:
            loop.call_soon_threadsafe(disconnect, change.deactivated)

    registry.on_change.append(changed)
    try:
        while True:
            await asyncio.sleep(interval)
            try:
                registry.refresh()
            except (OSError, ValueError) as exc:  # a half-written or unreadable file: next time
                log.warning("registry not re-read: %s", exc)
    finally:
        registry.on_change.remove(changed)


__all__ = ["DEFAULT_INTERVAL", "watch_deactivations"]
