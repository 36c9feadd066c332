"""Poison records: a malformed record (an event, a job's result, a stored value, a file)
is skipped, never allowed to stall the loop that reads it. Each one is logged with its
name and reason (both bounded), counted in ``ringrift_records_skipped_total{component,
kind}`` and reported once (a RECORD_SKIPPED event naming it, through the ``report``
callback the process wires to StateService). A record read again on the next round is
not counted or reported again. Reporting is best effort: the loop never fails for it.

No gRPC here: domain code uses it (the report callback is the adapter's)."""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("ringrift.skipped")

NAME_LIMIT, REASON_LIMIT = 120, 200
# report(kind, name, reason): publish the RECORD_SKIPPED event.
Report = Callable[[str, str, str], Awaitable[object]]


class MalformedRecord(Exception):
    """A record that can never be read as meant; the reader skips it. The message says why."""


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SkippedRecords:
    def __init__(self, component: str, report: Report | None = None, remember: int = 10_000) -> None:
        self.component = component
        self.report = report
        self.counts: Counter[str] = Counter()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._remember = remember

    async def skip(self, kind: str, name: str, reason: str) -> bool:
        """Skip record ``name`` of ``kind`` for ``reason``; False when it was already skipped."""
        name, reason = _bounded(name, NAME_LIMIT), _bounded(reason, REASON_LIMIT)
        key = (kind, name)
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self.counts[kind] += 1
        log.warning("%s skipped a malformed %s %r: %s", self.component, kind, name, reason)
        if self.report is not None:
            try:
                await self.report(kind, name, reason)
            except Exception as exc:  # the record stays skipped; the log and the metric still say so
                log.warning("could not report the skipped %s %r: %s", kind, name, exc)
        return True

    def collector(self) -> Collector:
        """The counter for a process's registry."""
        return _Collector(self)


class _Collector(Collector):
    def __init__(self, records: SkippedRecords) -> None:
        self._records = records

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "ringrift_records_skipped",
            "Malformed records skipped so that the loop reading them goes on, by component and kind.",
            labels=["component", "kind"],
        )
        for kind, count in sorted(self._records.counts.items()):
            family.add_metric([self._records.component, kind], count)
        yield family
