"""`ringrift logs --follow` right after `ringrift submit`: it waits until the job has left
PENDING (its dispatch) before asking for the logs, which fail NOT_FOUND while no node
holds the job (seen once in the co-hosted local cluster test)."""

from __future__ import annotations

from ringrift.common.v1 import common_pb2 as C
from ringrift.orchestrator.v1 import orchestrator_pb2 as O
from ringrift_cli.commands import jobs


class Client:
    def __init__(self, states: list[int]) -> None:
        self.states = states
        self.calls = 0

    async def get_job(self, request: O.GetJobRequest, timeout: float) -> O.GetJobResponse:
        assert request.job_id == "j1"
        state = self.states[min(self.calls, len(self.states) - 1)]
        self.calls += 1
        return O.GetJobResponse(job=C.Job(job_id="j1", state=state))


async def test_follow_waits_for_the_job_to_leave_pending(monkeypatch) -> None:
    monkeypatch.setattr(jobs, "PLACEMENT_CHECK_SECONDS", 0.0)
    client = Client([C.JOB_STATE_PENDING, C.JOB_STATE_PENDING, C.JOB_STATE_SCHEDULED])
    await jobs._placed(client, "j1", timeout=30)
    assert client.calls == 3


async def test_follow_of_a_job_that_stays_pending_gives_up_at_the_timeout(monkeypatch) -> None:
    monkeypatch.setattr(jobs, "PLACEMENT_CHECK_SECONDS", 0.0)
    client = Client([C.JOB_STATE_PENDING])
    await jobs._placed(client, "j1", timeout=0.05)  # then the logs call says why
    assert client.calls >= 2
