"""What a running process reads of its own certificate — the identities its SAN URIs
name and when it is valid — without loading `cryptography`.

`cryptography`'s Rust library and modules cost every long-running process about 12 MiB
of memory (issue 16's lean control plane), and a process needs them only to sign a
certificate or make a key and a request (pki, join: imported when that is done). Its own
certificate file is read with the interpreter's OpenSSL binding instead:
``_ssl._test_decode_cert``, which CPython's own ssl tests use (private, like the chain
accessor join.py uses; `ssl` is loaded by asyncio anyway). An interpreter without it
falls back to `cryptography`.
"""

from __future__ import annotations

import _ssl
import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path

from ringrift_runtime.security.identity import Identity


@dataclass(frozen=True)
class CertificateInfo:
    uris: tuple[str, ...]  # the URIs of its subject alternative names
    not_before: dt.datetime
    not_after: dt.datetime

    def identities(self) -> list[Identity]:
        """The RingRift identities among its SAN URIs."""
        found = []
        for uri in self.uris:
            try:
                found.append(Identity.parse(uri))
            except ValueError:
                continue
        return found


def read_certificate(path: Path) -> CertificateInfo:
    """The certificate in the PEM file at ``path``; FileNotFoundError when there is none,
    ValueError when it holds no certificate. Blocking (a small file)."""
    decode = getattr(_ssl, "_test_decode_cert", None)
    if decode is None:
        return _with_cryptography(path.read_bytes())
    if not path.is_file():
        raise FileNotFoundError(f"no certificate at {path}")
    try:
        decoded = decode(str(path))
    except ssl.SSLError as exc:
        raise ValueError(f"{path} holds no PEM certificate ({exc.args[-1] if exc.args else exc})") from None
    return CertificateInfo(
        tuple(value for kind, value in decoded.get("subjectAltName", ()) if kind == "URI"),
        _time(decoded["notBefore"]),
        _time(decoded["notAfter"]),
    )


def _time(text: str) -> dt.datetime:
    """OpenSSL's "Dec  6 12:27:10 2026 GMT" as an aware UTC time."""
    return dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(text), dt.UTC)


def _with_cryptography(pem: bytes) -> CertificateInfo:
    from ringrift_runtime.security import pki  # only where the interpreter has no decoder of its own

    return pki.certificate_info(pem)
