"""Logging with request ids.

The request id of the call being served lives in a context variable and every log record
carries it. It is the call's trace id (the server interceptor sets it from the call's
span, which continues the caller's W3C trace context; see tracing.py), so a log line
leads to the trace and one trace's lines can be found in every process's log.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from contextvars import ContextVar
from logging.handlers import RotatingFileHandler
from pathlib import Path

from ringrift_runtime.settings import LoggingSettings, RotatedFile

_REQUEST_ID: ContextVar[str] = ContextVar("ringrift_request_id", default="-")


def current_request_id() -> str:
    return _REQUEST_ID.get()


def set_request_id(request_id: str):  # returns a token for reset_request_id
    return _REQUEST_ID.set(request_id)


def reset_request_id(token) -> None:
    _REQUEST_ID.reset(token)


def new_request_id() -> str:
    """A request id for a call without a trace (health checks)."""
    return uuid.uuid4().hex


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


class RotatingLog(RotatingFileHandler):
    """A file kept within its retention (settings.RotatedFile; the log, the tracing file
    exporter's spans). When the process's stderr (and stdout) was the same file at start,
    each rollover points them at the new file too, so what does not pass through logging
    (a crash's traceback, a library's own prints) stays with the newest lines instead of
    going into a renamed file that is later deleted."""

    def __init__(self, path: Path, retention: RotatedFile) -> None:
        super().__init__(path, maxBytes=retention.file_max_bytes, backupCount=retention.file_keep, encoding="utf-8")
        self._follow = [fd for fd in (1, 2) if _same_file(fd, path)]

    def doRollover(self) -> None:
        super().doRollover()
        if self.stream is not None:
            for fd in self._follow:
                os.dup2(self.stream.fileno(), fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def configure_logging(settings: LoggingSettings, service: str) -> None:
    """Configure the root logger of this process once, at start."""
    handler: logging.Handler
    if settings.file is not None:
        handler = RotatingLog(settings.file, settings)
    else:
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
