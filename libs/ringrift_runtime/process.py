"""The entry point shared by every service's console script."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ringrift_runtime.grpc.server import ServiceApp, instance_name, serve
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
    configure_logging(settings.logging, service)
    try:
        configure_tracing(settings.tracing, service, instance_name(settings, service))
    except SettingsError as exc:
        print(f"ringrift-{service}: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS

    async def build_and_serve() -> None:
        if prepare is not None:
            await prepare(settings)
        # Built inside the running loop: channels and engines bind to it.
        await serve(build(settings), settings)

    try:
        asyncio.run(build_and_serve())
    except SettingsError as exc:
        print(f"ringrift-{service}: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except OSError as exc:
        logging.getLogger("ringrift").error("%s failed to start: %s", service, exc)
        return 1
    finally:
        shutdown_tracing()  # the last spans reach the exporter
    return 0
