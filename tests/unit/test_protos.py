"""The contracts: generated code matches the protos, buf lint passes, and every method
the design names exists with the fields it promises."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS, service_descriptors

ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    docs, methods = tmp_path / "api.md", tmp_path / "methods.py"
    script = str(ROOT / "scripts" / "gen_protos.py")
    arguments = ["--out", str(tmp_path), "--docs", str(docs), "--client", str(methods)]
    subprocess.run([sys.executable, script, *arguments], check=True)
    assert docs.read_text() == (ROOT / "docs" / "api.md").read_text(), "stale docs/api.md: run scripts/gen_protos.py"
    committed_methods = (ROOT / "libs" / "ringrift_client" / "methods.py").read_text()
    assert methods.read_text() == committed_methods, "stale ringrift_client/methods.py: run scripts/gen_protos.py"
    fresh, committed = _tree(tmp_path / "ringrift"), _tree(ROOT / "libs" / "ringrift")
    assert sorted(fresh) == sorted(committed), "generated file set differs: run scripts/gen_protos.py"
    differing = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], shallow=False)]
    assert not differing, f"stale generated code, run scripts/gen_protos.py: {differing}"


def test_buf_lint_passes() -> None:
    buf = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    assert buf, "buf is not installed: pip install -e '.[dev]' (package buf-bin)"
    result = subprocess.run([buf, "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_catches_a_violation(tmp_path: Path) -> None:
    """The lint gate is live: a proto breaking the STANDARD rules fails it."""
    buf = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    bad = tmp_path / "protos" / "ringrift" / "common" / "v1" / "bad.proto"
    bad.write_text(
        'syntax = "proto3";\npackage ringrift.common.v1;\n// Bad.\nenum Colour {\n  // Red.\n  RED = 0;\n}\n'
    )
    result = subprocess.run([buf, "lint"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert "ENUM_ZERO_VALUE_SUFFIX" in result.stdout or "UNSPECIFIED" in result.stdout


RELEASED = ROOT / "releases" / "protos-v1.binpb"


def _buf() -> str:
    buf = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    assert buf, "buf is not installed: pip install -e '.[dev]' (package buf-bin)"
    return buf


def test_contracts_do_not_break_the_released_v1() -> None:
    """buf breaking (buf.yaml: FILE rules, which include wire and JSON compatibility)
    against the image of the last released contracts."""
    result = subprocess.run([_buf(), "breaking", "--against", str(RELEASED)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# (text in common.proto, its replacement, a word buf's complaint contains or None when compatible)
CHANGES = [
    ("  uint32 job_slots = 12;", "  uint32 job_slots = 14;", "job_slots"),  # wire: a field renumbered
    ("  uint32 job_slots = 12;", "  string job_slots = 12;", "job_slots"),  # wire: a type changed
    ("  uint32 job_slots = 12;", "  uint32 slots = 12;", "job_slots"),  # JSON: a field renamed
    ("  uint32 job_slots = 12;", "  reserved 12;", "job_slots"),  # a field deleted
    ("  uint32 job_slots = 12;", "  uint32 job_slots = 12;\n  // New.\n  uint32 extra_slots = 99;", None),
]


@pytest.mark.parametrize(("old", "new", "complaint"), CHANGES)
def test_buf_breaking_refuses_incompatible_changes_only(
    tmp_path: Path, old: str, new: str, complaint: str | None
) -> None:
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    common = tmp_path / "protos" / "ringrift" / "common" / "v1" / "common.proto"
    text = common.read_text()
    assert old in text
    common.write_text(text.replace(old, new))
    result = subprocess.run(
        [_buf(), "breaking", "--against", str(RELEASED)], cwd=tmp_path, capture_output=True, text=True
    )
    if complaint is None:
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert result.returncode != 0 and complaint in result.stdout, result.stdout + result.stderr


def test_the_stub_recipe_generates_code_for_other_languages(tmp_path: Path) -> None:
    """examples/clients/buf.gen.yaml as a user runs it, with the plugins built into protoc
    (Python, C++): every proto file gives its stubs."""
    import yaml

    assert shutil.which("protoc"), "protoc is missing: scripts/bootstrap.sh --tests installs Debian's protobuf-compiler"
    template = yaml.safe_load((ROOT / "examples" / "clients" / "buf.gen.yaml").read_text())
    assert {p.get("protoc_builtin") or p.get("local") for p in template["plugins"]} >= {
        "python",
        "cpp",
        "grpc_cpp_plugin",
        "protoc-gen-go",
        "protoc-gen-go-grpc",
        "protoc-gen-prost",
        "protoc-gen-tonic",
    }
    template["plugins"] = [p for p in template["plugins"] if "protoc_builtin" in p]
    template["inputs"] = [{"directory": str(ROOT / "protos")}]
    (tmp_path / "buf.gen.yaml").write_text(yaml.safe_dump(template))
    result = subprocess.run(
        [_buf(), "generate", "--template", "buf.gen.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    protos = sorted(p.relative_to(ROOT / "protos").with_suffix("") for p in (ROOT / "protos").rglob("*.proto"))
    for proto in protos:
        assert (tmp_path / "gen" / "cpp" / f"{proto}.pb.cc").is_file(), proto
        assert (tmp_path / "gen" / "python" / f"{proto}_pb2.py").is_file(), proto


# Methods the ADR names for each manager, plus what ARCHITECTURE.md adds.
REQUIRED_METHODS = {
    "ringrift.state.v1.StateService": [
        "PersistState",
        "LoadState",
        "GetClusterStats",
        "GetClusterEpoch",
        "AdvanceEpoch",
        "PublishEvent",
        "WatchEvents",
    ],
    "ringrift.nodes.v1.NodeSelectorService": [
        "SelectBestNodeForJob",
        "GetNodeScore",
        "FilterByCapability",
        "RankNodes",
        "ExplainPlacement",
    ],
    "ringrift.sync.v1.SyncPlannerService": ["CollectManifests", "CreateSyncPlan", "ExecuteSyncPlan", "GetSyncTargets"],
    "ringrift.jobs.v1.JobService": [
        "SpawnJob",
        "SubmitJob",
        "CancelJob",
        "GetJob",
        "ListJobs",
        "WatchJobs",
        "StreamJobLogs",
        "RunDistributedSelfplay",
        "RunTraining",
        "ExportTrainingData",
        "CleanupOldCompletedJobs",
    ],
    "ringrift.selfplay.v1.SelfplaySchedulerService": [
        "PickWeightedSelfplayConfig",
        "GetEloBasedPriorityBoost",
        "GetHybridJobTargets",
        "GetTargetJobsForNode",
        "ExplainAllocation",
    ],
    "ringrift.training.v1.TrainingCoordinatorService": [
        "DispatchTrainingJob",
        "HandleTrainingJobCompletion",
        "RunPostTrainingGauntlet",
    ],
    "ringrift.orchestrator.v1.OrchestratorService": [
        "GetClusterStatus",
        "WatchEvents",
        "ExplainPlacement",
        "ExplainAllocation",
        "PauseLoop",
        "ResumeLoop",
    ],
    "ringrift.agent.v1.NodeAgentService": ["RunJob", "CancelJob", "GetManifest", "ReadFile", "PullFile"],
}

# Mutations made on behalf of the leader: each request carries the fencing epoch.
FENCED = [
    ("ringrift.state.v1.StateService", "AdvanceEpoch"),
    ("ringrift.state.v1.StateService", "TransitionJobs"),
    ("ringrift.state.v1.StateService", "PersistState"),
    ("ringrift.state.v1.StateService", "SetModelStatus"),
    ("ringrift.jobs.v1.JobService", "SpawnJob"),
    ("ringrift.jobs.v1.JobService", "DispatchPendingJobs"),
    ("ringrift.sync.v1.SyncPlannerService", "ExecuteSyncPlan"),
    ("ringrift.training.v1.TrainingCoordinatorService", "DispatchTrainingJob"),
    ("ringrift.agent.v1.NodeAgentService", "RunJob"),
    ("ringrift.agent.v1.NodeAgentService", "CancelJob"),
    ("ringrift.agent.v1.NodeAgentService", "PullFile"),
]


@pytest.mark.parametrize("service", sorted(REQUIRED_METHODS))
def test_service_has_the_methods_the_design_names(service: str) -> None:
    methods = service_descriptors()[service].methods_by_name
    missing = [m for m in REQUIRED_METHODS[service] if m not in methods]
    assert not missing, f"{service} lacks {missing}"


@pytest.mark.parametrize(("service", "method"), FENCED)
def test_leader_mutations_carry_the_epoch(service: str, method: str) -> None:
    request = service_descriptors()[service].methods_by_name[method].input_type
    field = request.fields_by_name.get("epoch")
    assert field is not None and field.type == field.TYPE_UINT64, f"{request.full_name} needs uint64 epoch"


def test_idempotency_keys_are_explicit() -> None:
    services = service_descriptors()
    for service, method in [
        ("ringrift.jobs.v1.JobService", "SubmitJob"),
        ("ringrift.jobs.v1.JobService", "SpawnJob"),
        ("ringrift.orchestrator.v1.OrchestratorService", "SubmitJob"),
    ]:
        assert "idempotency_key" in services[service].methods_by_name[method].input_type.fields_by_name


def test_every_process_serves_a_known_service() -> None:
    assert set(SERVICE_BY_PROCESS.values()) <= set(service_descriptors())


READ_VERBS = (
    "Get",
    "List",
    "Load",
    "Explain",
    "Rank",
    "Filter",
    "Select",
    "Collect",
    "Pick",
    "Watch",
    "Stream",
    "Read",
)


def test_idempotency_is_declared_in_the_protos_and_drives_the_retry_policy() -> None:
    """Every read declares NO_SIDE_EFFECTS; the channels retry exactly the methods the
    protos declare safe to repeat, and nothing that creates or changes state otherwise."""
    import json

    from ringrift_runtime.grpc.client import service_config
    from ringrift_runtime.grpc.contracts import idempotency_level
    from ringrift_runtime.settings import ClientSettings

    declared = set()
    for service_name, service in service_descriptors().items():
        for method in service.methods:
            full = f"{service_name}/{method.name}"
            level = idempotency_level(full)
            if method.name.startswith(READ_VERBS):
                assert level == "NO_SIDE_EFFECTS", f"{full} reads but does not say so"
            if level != "IDEMPOTENCY_UNKNOWN":
                declared.add((service_name, method.name))
    retried = {
        (n["service"], n["method"])
        for config in json.loads(service_config(ClientSettings()))["methodConfig"]
        for n in config["name"]
    }
    assert retried == declared
    assert ("ringrift.jobs.v1.JobService", "SubmitJob") not in retried  # only idempotent per key: not retried
    assert ("ringrift.jobs.v1.JobService", "CancelJob") in retried
