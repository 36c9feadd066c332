"""An unsigned integer past 2**63 - 1 anywhere in a request (a field, a nested or repeated
message, a map value) is named; everything else passes untouched."""

from __future__ import annotations

from ringrift.common.v1 import common_pb2 as C
from ringrift.orchestrator.v1 import orchestrator_pb2 as O
from ringrift.state.v1 import state_pb2
from ringrift_runtime.grpc.int64 import INT64_MAX, int64_violations


def test_unsigned_values_past_int64_are_named_wherever_they_are() -> None:
    assert int64_violations(state_pb2.ListEventsRequest(after_sequence=INT64_MAX)) == []
    [plain] = int64_violations(state_pb2.ListEventsRequest(after_sequence=INT64_MAX + 1))
    assert plain.field == "after_sequence" and str(INT64_MAX) in plain.description
    batch = O.SubmitJobsRequest(jobs=[O.SubmitJobRequest(spec=C.JobSpec(kind="echo")) for _ in range(3)])
    batch.jobs[2].spec.requirements.min_free_ram_mb = 2**64 - 1
    assert [v.field for v in int64_violations(batch)] == ["jobs[2].spec.requirements.min_free_ram_mb"]
    metrics = C.NodeInfo(metrics=C.NodeMetrics(running_jobs_by_kind={"selfplay": 3}), declared=C.NodeCapabilities())
    metrics.declared.ram_mb = 2**64 - 1
    assert [v.field for v in int64_violations(metrics)] == ["declared.ram_mb"]
    assert int64_violations(O.GetClusterStatusRequest()) == []
