"""Sizes every service applies the same way: pages, batches, and how much text is kept
or echoed back."""

from __future__ import annotations

# A page of any List* call: the default when the caller leaves it 0, and the maximum.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Items in one batch call (jobs created, transitions, nodes recorded, ...).
MAX_BATCH = 1000
# Characters of an error kept with a job or an attempt.
MAX_STORED_ERROR = 4000
# Characters of a reason carried in an event attribute or a log line.
MAX_REASON = 500
# Characters of a caller's value echoed back in an error message.
MAX_ECHO = 40
# Longest idempotency key.
MAX_IDEMPOTENCY_KEY = 128
# Highest attempt number of one job.
MAX_ATTEMPT = 100


def shorten(text: str, limit: int = MAX_REASON) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
