"""Bearer tokens for users who have no certificate: ``rrt.<id>.<secret>``. The store keeps
only the SHA-256 of each secret (a leaked file lets nobody in), with the identity the
token stands for and when it expires; the gateway re-reads it when it changes."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from ringrift_runtime.durable import write_atomic
from ringrift_runtime.security.identity import Identity, Kind

PREFIX = "rrt"
JOIN_PREFIX = "rrj"  # a one-time token a node joins with (`ringrift certs join-token`)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, dict[str, object]] = {}

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._entries = None, {}
            return self._entries
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                entries = {}  # unreadable: no token is valid until it is fixed
            self._entries = entries if isinstance(entries, dict) else {}
            self._stamp = stamp
        return self._entries

    def add(self, identity: Identity, seconds: float) -> str:
        """A new token for a user; returns it (it cannot be shown again)."""
        if identity.kind is not Kind.USER:
            raise ValueError("bearer tokens are for users; processes present certificates")
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        self._store(
            token_id, {"sha256": _digest(secret), "identity": identity.uri, "expires_at": time.time() + seconds}
        )
        return f"{PREFIX}.{token_id}.{secret}"

    def add_join(self, cluster: str, node_id: str, seconds: float) -> str:
        """A one-time join token, bound to ``node_id`` unless it is empty; returns it once."""
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        entry = {"sha256": _digest(secret), "join": cluster, "node_id": node_id, "expires_at": time.time() + seconds}
        self._store(token_id, entry)
        return f"{JOIN_PREFIX}.{token_id}.{secret}"

    def verify_join(self, token: str, cluster: str, now: float | None = None) -> tuple[str, str] | None:
        """(token id, the node it is bound to or "") of a valid, unexpired join token of
        ``cluster``; None for anything else. That it was not used yet is the caller's check."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != JOIN_PREFIX:
            return None
        entry = self._load().get(parts[1])
        if not isinstance(entry, dict) or entry.get("join") != cluster:
            return None
        if not hmac.compare_digest(str(entry.get("sha256", "")), _digest(parts[2])):
            return None
        if float(entry.get("expires_at", 0)) < (now if now is not None else time.time()):  # type: ignore[arg-type]
            return None
        return parts[1], str(entry.get("node_id", ""))

    def _store(self, token_id: str, entry: dict[str, object]) -> None:
        entries = dict(self._load())
        entries[token_id] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(entries, indent=1), 0o600)

    def verify(self, token: str, now: float | None = None) -> Identity | None:
        """The identity a valid, unexpired token stands for; None for anything else."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        entry = self._load().get(parts[1])
        if not isinstance(entry, dict):
            return None
        expected = str(entry.get("sha256", ""))
        if not hmac.compare_digest(expected, _digest(parts[2])):
            return None
        if float(entry.get("expires_at", 0)) < (now if now is not None else time.time()):  # type: ignore[arg-type]
            return None
        try:
            return Identity.parse(str(entry.get("identity", "")))
        except ValueError:
            return None
