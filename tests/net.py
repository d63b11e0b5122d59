"""Networking helpers for tests."""

import socket


def free_port() -> int:
    """A port the OS says is free on 127.0.0.1 (kr8s's `local_port="auto"` picks at random and can collide)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
