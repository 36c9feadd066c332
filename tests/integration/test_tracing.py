"""One job's life under one trace, across real processes (`ringrift up --traces`): the
gateway's SubmitJob, JobService's SubmitJob, the dispatch, the agent's RunJob, the agent's
reports and JobService's ReportJobEvent share a trace id, each span the child of the one
before; and the trace id is the request id in the processes' logs."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ringrift_runtime.tracing import read_spans
from tests.integration.local_up import BIN, local_cluster

pytestmark = pytest.mark.integrations

GATEWAY_SUBMIT = "ringrift.orchestrator.v1.OrchestratorService/SubmitJob"
JOBS_SUBMIT = "ringrift.jobs.v1.JobService/SubmitJob"
RUN = "ringrift.agent.v1.NodeAgentService/RunJob"
REPORTED = "ringrift.jobs.v1.JobService/ReportJobEvent"


def _ringrift(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ringrift"), *args], capture_output=True, text=True, timeout=60)


def _chain(spans: list[dict[str, Any]], job_id: str) -> dict[str, list[dict[str, Any]]]:
    """The spans of the trace of the gateway's SubmitJob whose job is ``job_id``, by name."""
    dispatched = [s for s in spans if s["name"] == "dispatch job" and s["attributes"].get("job.id") == job_id]
    if not dispatched:
        return {}
    trace = dispatched[0]["context"]["trace_id"]
    named: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        if span["context"]["trace_id"] == trace:
            named.setdefault(span["name"], []).append(span)
    return named


def _service(span: dict[str, Any]) -> str:
    return span["resource"]["attributes"]["service.name"]


def test_a_job_is_one_trace_from_submit_to_report(tmp_path: Path) -> None:
    directory, traces = tmp_path / "cluster", tmp_path / "traces"
    with local_cluster(directory, 1, "--traces", str(traces)):
        submitted = _ringrift("submit", "echo", "-p", "message=traced", "--dir", str(directory), "--json")
        assert submitted.returncode == 0, submitted.stderr
        job_id = json.loads(submitted.stdout)["job"]["jobId"]
        followed = _ringrift("logs", job_id, "--follow", "--dir", str(directory))
        assert followed.returncode == 0 and "traced" in followed.stdout, followed.stdout + followed.stderr

        wanted = {GATEWAY_SUBMIT, JOBS_SUBMIT, "dispatch job", RUN, "report job event", REPORTED}
        deadline = time.monotonic() + 30
        chain: dict[str, list[dict[str, Any]]] = {}
        while time.monotonic() < deadline:  # the exporters write every half second
            chain = _chain(read_spans(traces), job_id)
            if wanted <= set(chain) and len(chain[REPORTED]) == len(chain["report job event"]):
                time.sleep(1.0)  # one more export round: a later report of the same job is in too
                chain = _chain(read_spans(traces), job_id)
                break
            time.sleep(0.5)
        assert wanted <= set(chain), sorted(chain)

        def one(name: str) -> dict[str, Any]:
            return chain[name][0]

        def parent_of(child: dict[str, Any], parent: dict[str, Any]) -> bool:
            return child["parent_id"] == parent["context"]["span_id"]

        assert one(GATEWAY_SUBMIT)["parent_id"] is None  # the CLI sent no trace: the gateway began it
        assert _service(one(GATEWAY_SUBMIT)) == "ringrift-gateway"
        assert parent_of(one(JOBS_SUBMIT), one(GATEWAY_SUBMIT)) and _service(one(JOBS_SUBMIT)) == "ringrift-jobs"
        assert parent_of(one("dispatch job"), one(JOBS_SUBMIT))
        assert parent_of(one(RUN), one("dispatch job")) and _service(one(RUN)) == "ringrift-agent"
        reports = chain["report job event"]
        # A job that ends within agent.running_report_delay_seconds is reported once, by its
        # end; a slower one twice (RUNNING, then its end): each in the job's trace.
        assert len(reports) >= 1 and all(parent_of(r, one(RUN)) and _service(r) == "ringrift-agent" for r in reports)
        assert all(any(parent_of(s, r) for r in reports) for s in chain[REPORTED])
        assert len(chain[REPORTED]) == len(reports)  # each delivered once

        # The request id in the logs is the trace id: the gateway's and JobService's lines of it.
        trace_id = format(int(one(GATEWAY_SUBMIT)["context"]["trace_id"], 16), "032x")
        logs = {
            p["service"]: Path(p["log"]).read_text()
            for p in json.loads((directory / "cluster.json").read_text())["processes"]
            if p["service"] in ("gateway", "jobs") and f"[{trace_id}]" in Path(p["log"]).read_text()
        }
        assert set(logs) == {"gateway", "jobs"}, trace_id
