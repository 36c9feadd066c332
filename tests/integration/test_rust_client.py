"""A client in another language, built from protos/ in the suite: the Rust example in
examples/clients/rust (tonic-build generates its stubs at build time) connects to a local
cluster's gateway with the administrator's TLS credentials, submits an echo job, follows
its events to the end, reads it and streams its log. Skipped only where cargo is absent."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ringrift_cli.local_cluster import CERTS_DIR, admin_of
from ringrift_runtime.security.directory import CertificateDirectory
from tests.integration.local_up import local_cluster

pytestmark = pytest.mark.integrations

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "clients" / "rust"


@pytest.fixture(scope="module")
def rust_client() -> Path:
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed (the Rust toolchain): the Rust client example is not built")
    assert shutil.which("protoc"), "protoc is missing: scripts/bootstrap.sh --tests installs Debian's protobuf-compiler"
    built = subprocess.run(
        [cargo, "build", "--release", "--locked", "--quiet"], cwd=EXAMPLE, capture_output=True, text=True, timeout=1500
    )
    assert built.returncode == 0, built.stderr[-4000:]
    return EXAMPLE / "target" / "release" / "ringrift-client-example"


def test_the_rust_client_submits_waits_streams_logs_and_reads_events(tmp_path: Path, rust_client: Path) -> None:
    directory = tmp_path / "cluster"
    with local_cluster(directory, agents=1):
        gateway = next(
            p["address"]
            for p in json.loads((directory / "cluster.json").read_text())["processes"]
            if p["service"] == "gateway"
        )
        files = CertificateDirectory(directory / CERTS_DIR).files(admin_of("local"))
        ran = subprocess.run(
            [
                str(rust_client),
                *("--gateway", gateway, "--ca", str(files.ca), "--cert", str(files.cert), "--key", str(files.key)),
                *("--domain", "localhost", "--message", "hello-from-rust"),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        summary = json.loads(ran.stdout.strip().splitlines()[-1])
        assert summary["state"] == "JOB_STATE_SUCCEEDED"
        assert summary["log"].strip() == "hello-from-rust"
        assert (
            summary["events"][0] == "EVENT_TYPE_JOB_SUBMITTED" and summary["events"][-1] == "EVENT_TYPE_JOB_SUCCEEDED"
        )
        assert "EVENT_TYPE_JOB_STARTED" in summary["events"], summary

        # Without the client certificate the gateway refuses the TLS handshake.
        stranger = subprocess.run(
            [
                str(rust_client),
                *("--gateway", gateway, "--ca", str(files.ca), "--cert", str(files.ca), "--key", str(files.key)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stranger.returncode != 0 and "submitted" not in stranger.stdout
