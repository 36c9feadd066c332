"""The overlap checker used by the failover tests finds what it must find."""

from ringrift.common.v1 import common_pb2
from tests.integration.cluster.checker import acting_leader_violations

ELECTED, JOINED = common_pb2.EVENT_TYPE_LEADER_ELECTED, common_pb2.EVENT_TYPE_NODE_JOINED


def ev(sequence: int, event_type: int, epoch: int) -> common_pb2.Event:
    return common_pb2.Event(sequence=sequence, type=event_type, epoch=epoch)


def test_clean_handover_passes() -> None:
    log = [ev(1, ELECTED, 5), ev(2, JOINED, 5), ev(3, JOINED, 0), ev(4, ELECTED, 9), ev(5, JOINED, 9)]
    assert acting_leader_violations(log) == []


def test_old_leader_acting_after_new_one_is_found() -> None:
    log = [ev(1, ELECTED, 5), ev(2, ELECTED, 9), ev(3, JOINED, 5)]
    assert acting_leader_violations(log) == ["event 3 acted with epoch 5 after epoch 9 acted"]


def test_repeated_election_epoch_is_found() -> None:
    assert acting_leader_violations([ev(1, ELECTED, 5), ev(2, ELECTED, 5)]) != []
