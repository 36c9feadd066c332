"""Job states (values equal ``ringrift.common.v1.JobState``) and the sets every service
reasons with. The table of legal transitions belongs to StateService's domain."""

from __future__ import annotations

from enum import IntEnum


class JobState(IntEnum):
    PENDING = 1
    SCHEDULED = 2
    STARTING = 3
    RUNNING = 4
    SUCCEEDED = 5
    FAILED = 6
    CANCELLED = 7
    LOST = 8


# A job that has ended for good.
TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
# A job placed on a node that holds one of its slots.
ON_NODE = frozenset({JobState.SCHEDULED, JobState.STARTING, JobState.RUNNING})
# A job not ended yet: waiting for a node, or on one.
UNFINISHED = frozenset({JobState.PENDING}) | ON_NODE
# How one attempt can end (LOST is an attempt's end, not the job's: it is retried).
ATTEMPT_ENDED = TERMINAL | {JobState.LOST}
# An attempt whose process may be running on its node.
ATTEMPT_LIVE = frozenset({JobState.STARTING, JobState.RUNNING})


def state_name(state: int) -> str:
    """``RUNNING`` for 4; ``UNSPECIFIED`` for a value that is no state."""
    try:
        return JobState(state).name
    except ValueError:
        return "UNSPECIFIED"
