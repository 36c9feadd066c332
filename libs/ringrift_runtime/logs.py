"""Logging with request ids.

The request id of the call being served (or made) lives in a context variable; the
server interceptor sets it from the ``x-request-id`` metadata (or creates one), the
client interceptor passes it on, and every log record carries it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from contextvars import ContextVar

from ringrift_runtime.settings import LoggingSettings

REQUEST_ID_METADATA_KEY = "x-request-id"
_REQUEST_ID: ContextVar[str] = ContextVar("ringrift_request_id", default="-")


def current_request_id() -> str:
    return _REQUEST_ID.get()


def set_request_id(request_id: str):  # returns a token for reset_request_id
    return _REQUEST_ID.set(request_id)


def reset_request_id(token) -> None:
    _REQUEST_ID.reset(token)


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure_logging(settings: LoggingSettings, service: str) -> None:
    """Configure the root logger of this process once, at start."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    logging.getLogger("ringrift").info("logging configured for %s", service)
