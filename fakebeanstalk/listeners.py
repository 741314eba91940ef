"""Listening sockets of the fake server: TCP and/or a unix socket, non-blocking."""

from __future__ import annotations

import os
import socket
import stat

from fakebeanstalk.errors import AddressInUseError

__all__ = ["open_listeners"]


def open_listeners(
    host: str | None, port: int, unix_path: str | None
) -> tuple[list[socket.socket], int]:
    """Listen on ``host:port`` (port 0: a free one) and/or ``unix_path``; returns the
    sockets and the TCP port actually bound."""
    listeners: list[socket.socket] = []
    try:
        if host is not None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            tcp = socket.socket(family, socket.SOCK_STREAM)
            listeners.append(tcp)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, port))
            port = tcp.getsockname()[1]
        if unix_path is not None:
            _remove_stale_socket(unix_path)
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listeners.append(unix)
            unix.bind(unix_path)
        for listener in listeners:
            listener.listen(1024)
            listener.setblocking(False)
    except OSError as exc:
        for listener in listeners:
            listener.close()
        raise AddressInUseError(f"cannot listen: {exc}") from exc
    return listeners, port


def _remove_stale_socket(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISSOCK(mode):
        os.unlink(path)
