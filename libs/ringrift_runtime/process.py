"""The entry point shared by every service's console script."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from ringrift_runtime.grpc.server import AppStarter, ServiceApp, instance_name, serve, serve_apps
from ringrift_runtime.logs import configure_logging
from ringrift_runtime.settings import ProcessSettings, SettingsError, load_settings_of
from ringrift_runtime.tracing import configure_tracing, shutdown_tracing

EXIT_BAD_SETTINGS = 2


S = TypeVar("S", bound=ProcessSettings)


def run_service(
    service: str,
    build: Callable[[S], ServiceApp],
    settings_class: type[S],
    argv: list[str] | None = None,
    prepare: Callable[[S], Awaitable[None]] | None = None,
) -> int:
    """Parse arguments, load settings (exit 2 with a clear message when invalid), run
    ``prepare`` (an agent joining its cluster), build the app and serve it until
    SIGTERM/SIGINT. Returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog=f"ringrift-{service}",
        description=f"RingRift {service} service. Settings come from --config and RINGRIFT_* variables.",
    )
    parser.add_argument("--config", help="TOML settings file (also RINGRIFT_CONFIG)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings_of(settings_class, args.config)
    except SettingsError as exc:
        print(f"ringrift-{service}: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS

    async def build_and_serve() -> None:
        if prepare is not None:
            await prepare(settings)
        # Built inside the running loop: channels and engines bind to it.
        await serve(build(settings), settings)

    return _run(service, settings, build_and_serve)


def _run(service: str, settings: ProcessSettings, main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Configure logging and tracing from ``settings``, run ``main`` until it returns, and
    say how it ended: exit 2 on bad settings, 1 when it could not start, else 0."""
    configure_logging(settings.logging, service)
    try:
        configure_tracing(settings.tracing, service, instance_name(settings, service))
        asyncio.run(main())
    except SettingsError as exc:
        print(f"ringrift-{service}: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except OSError as exc:
        logging.getLogger("ringrift").error("%s failed to start: %s", service, exc)
        return 1
    finally:
        shutdown_tracing()  # the last spans reach the exporter
    return 0


def _co_hosted(spec: str, builds: Mapping[str, object]) -> tuple[str, str | None]:
    """``NAME`` or ``NAME=CONFIG`` of --service, checked."""
    name, sep, config = spec.partition("=")
    if name not in builds:
        raise SettingsError(f"--service {spec[:80]!r}: expected one of {', '.join(builds)} (NAME or NAME=CONFIG.toml)")
    if sep and not config:
        raise SettingsError(f"--service {name}=: the config file is empty; give NAME alone or NAME=CONFIG.toml")
    return name, config or None


def run_services(
    process: str,
    builds: Mapping[str, Callable[[S], ServiceApp]],
    settings_class: type[S],
    argv: list[str] | None = None,
) -> int:
    """Several services in one process (co-hosting on one machine, to save the memory of
    one interpreter each): every ``--service NAME[=CONFIG]`` is built from its own
    settings (RINGRIFT_* variables, then its TOML file: its identity, instance id,
    database) and served on its own host, in the order given; each later one finds the
    earlier ones at their bound addresses. The process's ready file and logging come
    from the first service's settings; it logs and traces as ``process``. Returns the
    process exit code."""
    prog = f"ringrift-{process}"
    parser = argparse.ArgumentParser(
        prog=prog,
        description="RingRift services in one process, each on its own port with its own identity.",
    )
    parser.add_argument(
        "--service",
        action="append",
        required=True,
        metavar="NAME[=CONFIG]",
        help=f"a service to run ({', '.join(builds)}), with its own TOML settings file; repeat, in start order",
    )
    args = parser.parse_args(argv)
    try:
        chosen = [_co_hosted(spec, builds) for spec in args.service]
        names = [name for name, _ in chosen]
        if len(set(names)) != len(names):
            raise SettingsError(f"--service: each service once, got {', '.join(names)}")
        loaded = []
        for name, config in chosen:
            try:
                loaded.append((name, load_settings_of(settings_class, config)))
            except SettingsError as exc:
                raise SettingsError(f"{name}: {exc}") from None
    except SettingsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    first = loaded[0][1]

    def starter(name: str, settings: S) -> AppStarter:
        def start(addresses: dict[str, str]) -> tuple[ServiceApp, S]:
            own = settings.model_copy(
                update={
                    "server": settings.server.model_copy(update={"ready_file": None}),
                    "endpoints": settings.endpoints.model_copy(update=addresses),
                }
            )
            return builds[name](own), own

        return start

    starters = [starter(name, settings) for name, settings in loaded]
    return _run(process, first, lambda: serve_apps(starters, first.server.ready_file))
