"""The host's listening sockets, bound before anything else starts (``--port 0`` then has its
port before the worker imports the app)."""

from __future__ import annotations

import socket

RPC_DEFAULT_PORT = 17071
"""``LocalHttpListener.DefaultPort``."""


class PortUnavailable(OSError):
    pass


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen now, so the port is known (``--port 0``) before the app is imported."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise PortUnavailable(
            f"Port {port} is unavailable. Close the process using that port, or specify "
            f"another port using --port [-p]. ({error.strerror})"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def bind_rpc_socket() -> socket.socket:
    try:
        return bind_socket("127.0.0.1", RPC_DEFAULT_PORT)
    except PortUnavailable:
        return bind_socket("127.0.0.1", 0)
