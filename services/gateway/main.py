"""Composition root of the gateway service: build(settings) -> app; nothing built at import.
Its RPCs answer UNIMPLEMENTED until their behaviour lands (see the issue tracker)."""

import sys

from ringrift_runtime.grpc.server import StaticApp, placeholder_app
from ringrift_runtime.process import run_service
from ringrift_runtime.settings import RingriftSettings


def build(settings: RingriftSettings) -> StaticApp:
    return placeholder_app("gateway")


def main() -> None:
    sys.exit(run_service("gateway", build))
