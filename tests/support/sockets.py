"""Watching a raw socket the server should close (a deadline, a limit, a refusal)."""

from __future__ import annotations

import socket
import time


def closed_within(sock: socket.socket, timeout: float) -> bool:
    """Whether the peer closes ``sock`` within ``timeout`` seconds (reading, and dropping, any
    bytes it sends first). A ``timeout`` of 0 reads nothing and answers False."""
    end = time.monotonic() + timeout
    try:
        while (left := end - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False
