"""Probing a TLS listener the way an intruder would: with the right CA but no client certificate."""

from __future__ import annotations

import socket
import ssl


def refusal_without_client_cert(host: str, port: int, ca_pem: str, within: float = 10) -> str:
    """How the server turns away a TLS client that trusts `ca_pem` but presents no certificate (an SSL alert, or
    EOF, depending on timing); raises if the client gets data or has to wait (the server let it in)."""
    ctx = ssl.create_default_context(cadata=ca_pem)
    ctx.check_hostname = False
    with socket.create_connection((host, port), timeout=within) as raw, ctx.wrap_socket(raw) as conn:
        try:
            conn.sendall(b"\0" * 16)  # a TLS 1.3 server checks the client's certificate after the handshake
            data = conn.recv(1)
        except ssl.SSLError as err:
            return str(err)
        except ConnectionError as err:
            return repr(err)
    assert data == b"", "the server answered a client without a certificate"
    return "closed"
