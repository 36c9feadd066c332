#!/usr/bin/env python3
"""Generate the Python contracts from protos/ into libs/ (or another directory).

One script produces everything under libs/ringrift/: messages (*_pb2.py), gRPC stubs
(*_pb2_grpc.py), and mypy-protobuf stubs (*.pyi) for both, and the API reference
docs/api.md from the protos' comments. The output is committed; tests/unit/test_protos.py
regenerates into a temporary directory and fails on any difference, so edit the .proto
files and run this script, never the output. It also writes the Python client's typed
methods (libs/ringrift_client/methods.py).

    python scripts/gen_protos.py            # regenerate libs/ringrift and docs/api.md
    python scripts/gen_protos.py --out DIR --docs FILE  # generate elsewhere (the drift test)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE = "ringrift"


MYPY_PLUGINS = ("protoc-gen-mypy", "protoc-gen-mypy_grpc")


def plugin_path(name: str) -> str:
    """mypy-protobuf's plugins live beside this interpreter (venv not activated) or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: install the dev extras (pip install -e '.[dev]')")
    return found


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.joinpath(PACKAGE).rglob("*.proto"))


def generate(out: Path) -> list[Path]:
    """Generate into ``out`` (replacing ``out/ringrift``); return the files written."""
    import grpc_tools
    from grpc_tools import protoc  # imported here: only the generator needs grpcio-tools

    target = out / PACKAGE
    if target.exists():
        shutil.rmtree(target)
    out.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        *(f"--plugin={name}={plugin_path(name)}" for name in MYPY_PLUGINS),
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *files,
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    # Regular packages (not namespace packages) so installs and type checkers agree.
    for directory in [target, *(p for p in target.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    (target / "py.typed").touch()
    return sorted(p for p in target.rglob("*") if p.is_file())


def descriptors():
    """The protos as a FileDescriptorSet with their comments (source info)."""
    import grpc_tools
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.binpb"
        files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
        args = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", "--include_source_info"]
        if protoc.main([*args, f"--descriptor_set_out={out}", *files]) != 0:
            raise SystemExit("protoc failed to build the descriptor set")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "libs", help="output root")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "api.md", help="the API reference to write")
    parser.add_argument(
        "--client",
        type=Path,
        default=ROOT / "libs" / "ringrift_client" / "methods.py",
        help="the Python client's typed methods to write",
    )
    args = parser.parse_args(argv)
    written = generate(args.out)
    print(f"generated {len(written)} files under {args.out / PACKAGE}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import api_docs  # beside this script
    import client_methods

    files = descriptors()
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    args.docs.write_text(api_docs.render(files))
    print(f"wrote the API reference to {args.docs}")
    args.client.parent.mkdir(parents=True, exist_ok=True)
    args.client.write_text(client_methods.render(files))
    print(f"wrote the client's typed methods to {args.client}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
