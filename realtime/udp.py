"""The OSC port's UDP socket, with room for bursts (standard library only: `live` binds it before its heavy
imports, so that nothing sent meanwhile is lost).

The kernel caps a socket's receive buffer at `net.core.rmem_max` without a word (212992 bytes by default on Linux:
about 500 small OSC messages where 1 MB holds about 2000). A controller sweeping many faders, or a burst sent while
the model loads, then loses its newest packets before anything can count them; `receive_buffer` says what the
socket really got, so the cap can be said once and how to lift it.
"""

from __future__ import annotations

import contextlib
import socket
import sys

RECEIVE_BUFFER = 1 << 20  # bytes asked for
LINUX = sys.platform.startswith("linux")
SO_RCVBUFFORCE = 33 if LINUX else None  # Linux's number (Python's socket module does not name it)


def widen_receive_buffer(sock: socket.socket, size: int | None = None) -> int:
    """Ask for a `size`-byte (default RECEIVE_BUFFER) receive buffer, past `rmem_max` where the process may
    (SO_RCVBUFFORCE needs CAP_NET_ADMIN), and return the bytes the socket got for packets."""
    for option in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
        if option is None:
            continue
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, size or RECEIVE_BUFFER)
            break
    return receive_buffer(sock)


def receive_buffer(sock: socket.socket) -> int:
    """The socket's receive buffer in bytes for packets (Linux reports twice that, the rest being its bookkeeping)."""
    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return got // 2 if LINUX else got


def capped_note(got: int, size: int | None = None) -> str | None:
    """One line saying the kernel capped the buffer below `size` (default RECEIVE_BUFFER), and how to lift the cap
    (None where it is not)."""
    size = size or RECEIVE_BUFFER
    if got >= size or not LINUX:  # the cap and its sysctl are Linux's
        return None
    return (
        f"the OSC port's receive buffer is {got // 1024} KB, not the {size // 1024} KB asked (the kernel caps it at "
        f"net.core.rmem_max): a burst of messages (many faders swept at once) may lose its newest ones; lift the cap "
        f"with `sudo sysctl -w net.core.rmem_max={size}`"
    )
