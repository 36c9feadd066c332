"""ringrift_client against `ringrift up`: the blocking and the asyncio client submit, wait,
stream logs, watch events and submit many idempotently; refusals arrive as typed
exceptions naming the field; and the README's script runs from the client's own wheel in
a fresh virtual environment that has nothing but grpcio and protobuf."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from ringrift_client import AsyncClient, Client, InvalidArgument, JobSpec, JobState, NotFound
from ringrift_client.errors import Unavailable
from tests.integration.local_up import local_cluster

pytestmark = pytest.mark.integrations

ROOT = Path(__file__).resolve().parents[2]
ECHO = JobSpec(kind="echo", params={"message": "from-python"})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("client") / "cluster"
    with local_cluster(directory, 1):
        yield directory


def test_the_blocking_client(cluster: Path) -> None:
    with Client.connect(config=cluster / "client.toml") as client:
        job = client.submit_job(spec=ECHO).job
        assert job.state == JobState.Value("JOB_STATE_PENDING") or job.state > 0
        done = client.wait(job.job_id, timeout=60)
        assert JobState.Name(done.state) == "JOB_STATE_SUCCEEDED"
        assert b"".join(client.logs(job.job_id)).decode().strip() == "from-python"
        seen = []
        for event in client.watch(subject=job.job_id, timeout=10):
            seen.append(event.type)
            if event.type == 4:  # EVENT_TYPE_JOB_SUCCEEDED
                break
        assert seen[0] == 1 and seen[-1] == 4, seen  # SUBMITTED first, SUCCEEDED last

        many = client.submit_many([ECHO] * 5, idempotency_prefix="client-test")
        again = client.submit_many([ECHO] * 5, idempotency_prefix="client-test")
        assert len({j.job_id for j in many}) == 5 and [j.job_id for j in again] == [j.job_id for j in many]
        assert all(JobState.Name(client.wait(j.job_id, timeout=60).state) == "JOB_STATE_SUCCEEDED" for j in many)

        with pytest.raises(InvalidArgument) as refused:
            client.submit_many([ECHO, JobSpec(kind="no-such-kind")])
        assert refused.value.fields == ["jobs[1].spec.kind"]
        with pytest.raises(NotFound):
            client.get_job(job_id="J0000000000000000000000000")
        listed = client.list_jobs(kind="echo")
        assert {j.job_id for j in many} <= {j.job_id for j in listed.jobs}


def test_the_asyncio_client(cluster: Path) -> None:
    async def scenario() -> tuple[str, str]:
        async with AsyncClient.connect(config=cluster / "client.toml") as client:
            job = (await client.submit_job(spec=ECHO)).job
            done = await client.wait(job.job_id, timeout=60)
            output = b"".join([chunk async for chunk in client.logs(job.job_id)]).decode().strip()
            status = await client.get_cluster_status()
            assert status.leader_id
            return JobState.Name(done.state), output

    assert asyncio.run(scenario()) == ("JOB_STATE_SUCCEEDED", "from-python")


def test_an_unreachable_gateway_is_unavailable(cluster: Path) -> None:
    with Client.connect("127.0.0.1:1", config=cluster / "client.toml", timeout=2) as client:
        with pytest.raises(Unavailable):
            client.get_cluster_status()


def test_the_readme_script_runs_from_the_wheel_in_a_fresh_environment(cluster: Path, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Python client") :]
    script = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(script.strip().splitlines()) <= 12
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT / "clients" / "python"), "-w", str(wheels)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *wheels.glob("*.whl")], capture_output=True, text=True, timeout=600
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    frozen = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    names = {re.split(r"==| @ ", line)[0].lower() for line in frozen.splitlines() if line.strip()}
    assert names <= {"grpcio", "protobuf", "ringrift-client", "typing_extensions"}, frozen  # grpcio brings the last
    ran = subprocess.run(
        [str(python), "-c", script.replace("ringrift-local/client.toml", str(cluster / "client.toml"))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].endswith("JOB_STATE_SUCCEEDED") and lines[1] == "hello"
    assert lines[2] == "refused: ['spec.kind']"
