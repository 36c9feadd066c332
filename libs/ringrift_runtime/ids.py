"""Unique, time-ordered identifiers (ULID: 48-bit milliseconds + 80 random bits, in
Crockford base32). Unique under concurrency and across processes, and they sort by
creation time: the old cluster's second-resolution ids collided."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid() -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))
