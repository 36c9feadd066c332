"""Checks over the event log that leadership never overlapped."""

from __future__ import annotations

from ringrift.common.v1 import common_pb2


def acting_leader_violations(events: list[common_pb2.Event]) -> list[str]:
    """Every fenced event (epoch > 0) is an act of the leader of that epoch. Two leaders
    acted at once exactly when an act of an older epoch follows an act of a newer one;
    and each election must announce a strictly newer epoch."""
    problems = []
    highest = 0
    last_elected = 0
    for event in sorted(events, key=lambda e: e.sequence):
        if event.epoch:
            if event.epoch < highest:
                problems.append(f"event {event.sequence} acted with epoch {event.epoch} after epoch {highest} acted")
            highest = max(highest, event.epoch)
        if event.type == common_pb2.EVENT_TYPE_LEADER_ELECTED:
            if event.epoch <= last_elected:
                problems.append(f"event {event.sequence} elected epoch {event.epoch} after epoch {last_elected}")
            last_elected = event.epoch
    return problems
