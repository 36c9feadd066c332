"""Built-in trivial job kinds (see templates/default.toml): they exercise the whole job
path without a workload. Each writes result.json into its work directory."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _write_result(work_dir: Path, result: dict) -> None:
    tmp = work_dir / "result.json.tmp"
    tmp.write_text(json.dumps(result))
    tmp.replace(work_dir / "result.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ringrift_agent.builtin_jobs")
    sub = parser.add_subparsers(dest="command", required=True)
    sleep = sub.add_parser("sleep")
    sleep.add_argument("--seconds", type=float, default=0.0)
    sleep.add_argument("--exit-code", type=int, default=0)
    sleep.add_argument("--work-dir", type=Path, required=True)
    echo = sub.add_parser("echo")
    echo.add_argument("--message", required=True)
    echo.add_argument("--work-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "sleep":
        print(f"sleeping {args.seconds}s", flush=True)
        time.sleep(args.seconds)
        if args.exit_code:
            print(f"failing with exit code {args.exit_code}", file=sys.stderr, flush=True)
            return args.exit_code
        _write_result(args.work_dir, {"slept_seconds": args.seconds})
        return 0
    print(args.message, flush=True)
    _write_result(args.work_dir, {"message": args.message})
    return 0


if __name__ == "__main__":
    sys.exit(main())
