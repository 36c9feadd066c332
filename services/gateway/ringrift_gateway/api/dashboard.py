"""The gateway's dashboard on its HTTP side port: one page (no front-end build step; plain
HTML, CSS and JavaScript with an SVG chart) and the JSON it polls:

- ``/``             the page
- ``/api/status``   leader, epoch, nodes with their load, jobs by state, loops, best models
- ``/api/ratings``  rating history per config (the best non-baseline rating of every fit)
- ``/api/events``   the newest events

The side port serves from its own thread; the data comes from the gateway's event loop
through ``run_coroutine_threadsafe`` (the loop is never blocked), the status through the
same single-flight cache as the gRPC facade.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from ringrift.common.v1 import common_pb2
from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_contracts.nodes import effective_gpu
from ringrift_contracts.tables import JOB_STATES
from ringrift_runtime.errors import RingriftError

TIMEOUT_SECONDS = 10.0


def _seconds(stamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def status_json(status: orchestrator_pb2.GetClusterStatusResponse) -> dict:
    jobs: dict[str, int] = {}
    for count in status.jobs:
        state = JOB_STATES.name(count.state)
        jobs[state] = jobs.get(state, 0) + count.count
    nodes = []
    for node in status.nodes:
        gpu = effective_gpu(node)
        nodes.append(
            {
                "node_id": node.node_id,
                "address": node.address,
                "gpu": f"{gpu.count}x {gpu.model}" if gpu.count else "",
                "cpu_percent": round(node.metrics.cpu_percent, 1),
                "memory_percent": round(node.metrics.memory_percent, 1),
                "gpu_percent": round(node.metrics.gpu_utilization_percent, 1),
                "disk_percent": round(node.metrics.disk_percent, 1),
                "jobs": dict(node.metrics.running_jobs_by_kind),
                "draining": node.draining,
                "quarantined": node.quarantined,
            }
        )
    loops = [
        {
            "name": l.name,
            "health": orchestrator_pb2.LoopHealth.Name(l.health).removeprefix("LOOP_HEALTH_").lower(),
            "runs": l.runs,
            "consecutive_errors": l.consecutive_errors,
            "last_error": l.last_error,
        }
        for l in status.loops
    ]
    return {
        "leader_id": status.leader_id,
        "epoch": status.epoch,
        "replica_id": status.replica_id,
        "computed_at": _seconds(status.computed_at),
        "nodes": nodes,
        "jobs": jobs,
        "loops": loops,
        "best_model_by_config": dict(status.best_model_by_config),
        "games_by_config": dict(status.games_by_config),
    }


def ratings_json(ratings: list[common_pb2.Rating], baselines: list[str]) -> dict:
    """Per config, one point per fit: the best rating of a trained model at that time."""
    best: dict[str, dict[float, tuple[float, str]]] = {}
    for r in ratings:
        if r.player in baselines:
            continue
        at = round(_seconds(r.fitted_at), 3)
        points = best.setdefault(r.config_key, {})
        if at not in points or r.elo > points[at][0]:
            points[at] = (r.elo, r.player)
    return {
        config: [{"t": t, "elo": round(e, 1), "player": p} for t, (e, p) in sorted(points.items())]
        for config, points in sorted(best.items())
    }


def events_json(events: list[common_pb2.Event]) -> list[dict]:
    return [
        {
            "sequence": e.sequence,
            "type": common_pb2.EventType.Name(e.type).removeprefix("EVENT_TYPE_").lower(),
            "subject": e.subject,
            "source": e.source,
            "at": _seconds(e.time),
        }
        for e in reversed(events)
    ]


class Dashboard:
    def __init__(self, status, state, baselines: list[str]) -> None:
        self._status = status  # ClusterStatus
        self._state = state  # StateClient
        self._baselines = baselines
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def _run(self, coroutine):
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the gateway is still starting")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(TIMEOUT_SECONDS)

    def _json(self, produce) -> tuple[str, str, bytes]:
        try:
            body = produce()
        except (RingriftError, RuntimeError, TimeoutError) as exc:
            return "503 Service Unavailable", "application/json", json.dumps({"error": str(exc)}).encode()
        return "200 OK", "application/json", json.dumps(body).encode()

    async def _ratings(self) -> dict:
        return ratings_json(await self._state.ratings("", True), self._baselines)

    async def _events(self, limit: int) -> list[dict]:
        return events_json(await self._state.recent_events(limit))

    async def _status_json(self) -> dict:
        return status_json(await self._status.get())

    def routes(self) -> dict:
        def page(environ):
            return "200 OK", "text/html; charset=utf-8", PAGE.encode()

        def status(environ):
            return self._json(lambda: self._run(self._status_json()))

        def ratings(environ):
            return self._json(lambda: self._run(self._ratings()))

        def events(environ):
            query = parse_qs(environ.get("QUERY_STRING", ""))
            try:
                limit = max(1, min(int(query.get("limit", ["40"])[0]), 500))
            except ValueError:
                return "400 Bad Request", "application/json", b'{"error": "limit must be a number from 1 to 500"}'
            return self._json(lambda: self._run(self._events(limit)))

        return {"/": page, "/api/status": status, "/api/ratings": ratings, "/api/events": events}


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>RingRift Orchestrator</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d232b; }
  header { background: #1d232b; color: #fff; padding: 10px 20px; display: flex; gap: 24px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  main { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 16px; padding: 16px; }
  section { background: #fff; border-radius: 6px; padding: 12px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  h2 { font-size: 15px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid #eceef1; white-space: nowrap; }
  th { color: #5b6573; font-weight: 600; }
  .bar { background: #e4e7eb; height: 8px; width: 80px; border-radius: 4px; display: inline-block; }
  .bar > span { display: block; height: 8px; border-radius: 4px; background: #3b82f6; }
  .healthy { color: #15803d; } .degraded { color: #b91c1c; } .paused { color: #a16207; } .stopped { color: #6b7280; }
  #error { color: #b91c1c; }
  svg text { font-size: 11px; fill: #5b6573; }
</style>
</head>
<body>
<header><h1>RingRift Orchestrator</h1><span id="leader">connecting...</span><span id="error"></span></header>
<main>
  <section><h2>Nodes</h2><table id="nodes"><thead><tr><th>node</th><th>GPU</th><th>CPU</th><th>memory</th><th>GPU use</th><th>jobs</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Rating over time</h2><svg id="chart" width="100%" height="260" viewBox="0 0 560 260" role="img" aria-label="rating over time per config"></svg></section>
  <section><h2>Jobs by state</h2><table id="jobs"><tbody></tbody></table><h2 style="margin-top:12px">Loops</h2><table id="loops"><thead><tr><th>loop</th><th>health</th><th>runs</th><th>errors</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Recent events</h2><table id="events"><thead><tr><th>#</th><th>event</th><th>subject</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
"use strict";
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
function cell(text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; }
function fill(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows.map(cells => { const tr = document.createElement("tr"); tr.append(...cells); return tr; }));
}
function bar(percent) {
  const td = document.createElement("td"), outer = document.createElement("span"), inner = document.createElement("span");
  outer.className = "bar"; inner.style.width = Math.max(0, Math.min(100, percent)) + "%"; outer.append(inner);
  td.append(outer, " " + Math.round(percent) + "%"); return td;
}
function renderStatus(s) {
  document.getElementById("leader").textContent = "leader " + (s.leader_id || "(none)") + " \u00b7 epoch " + s.epoch + " \u00b7 answered by " + s.replica_id;
  fill("nodes", s.nodes.map(n => [cell(n.node_id), cell(n.gpu || "-"), bar(n.cpu_percent), bar(n.memory_percent),
    n.gpu ? bar(n.gpu_percent) : cell("-"), cell(Object.entries(n.jobs).map(([k, v]) => k + " " + v).join(", ") || "idle")]));
  fill("jobs", Object.entries(s.jobs).map(([state, count]) => [cell(state), cell(String(count))]));
  fill("loops", s.loops.map(l => [cell(l.name), cell(l.health, l.health), cell(String(l.runs)), cell(String(l.consecutive_errors))]));
}
function renderChart(series) {
  const svg = document.getElementById("chart"), W = 560, H = 260, L = 44, R = 120, T = 10, B = 28, NS = "http://www.w3.org/2000/svg";
  const el = (name, attrs, text) => { const e = document.createElementNS(NS, name); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; return e; };
  const points = Object.values(series).flat();
  svg.replaceChildren();
  if (!points.length) { svg.append(el("text", {x: L, y: H / 2}, "no ratings yet: they appear after the first gauntlet")); return; }
  const t0 = Math.min(...points.map(p => p.t)), t1 = Math.max(...points.map(p => p.t), t0 + 1);
  let e0 = Math.min(...points.map(p => p.elo)), e1 = Math.max(...points.map(p => p.elo));
  if (e1 - e0 < 50) { e0 -= 25; e1 += 25; }
  const x = t => L + (t - t0) / (t1 - t0) * (W - L - R), y = e => H - B - (e - e0) / (e1 - e0) * (H - T - B);
  svg.append(el("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#9ca3af"}), el("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#9ca3af"}));
  for (const e of [e0, (e0 + e1) / 2, e1]) svg.append(el("text", {x: 2, y: y(e) + 4}, Math.round(e)));
  svg.append(el("text", {x: L, y: H - 8}, "minutes: 0"), el("text", {x: W - R - 40, y: H - 8}, ((t1 - t0) / 60).toFixed(1)));
  Object.entries(series).forEach(([config, pts], i) => {
    const color = COLORS[i % COLORS.length];
    svg.append(el("polyline", {fill: "none", stroke: color, "stroke-width": 2, points: pts.map(p => x(p.t) + "," + y(p.elo)).join(" "), "data-config": config}));
    for (const p of pts) svg.append(el("circle", {cx: x(p.t), cy: y(p.elo), r: 3, fill: color}));
    svg.append(el("text", {x: W - R + 8, y: T + 14 + i * 16, fill: color, style: "fill:" + color}, config));
  });
}
function renderEvents(events) {
  fill("events", events.map(e => [cell(String(e.sequence)), cell(e.type), cell(e.subject)]));
}
async function get(path) {
  const reply = await fetch(path, {cache: "no-store"});
  if (!reply.ok) throw new Error(path + ": " + reply.status);
  return reply.json();
}
async function refresh() {
  try {
    const [status, ratings, events] = await Promise.all([get("/api/status"), get("/api/ratings"), get("/api/events?limit=25")]);
    renderStatus(status); renderChart(ratings); renderEvents(events);
    document.getElementById("error").textContent = "";
    document.body.dataset.loaded = "true";
  } catch (e) {
    document.getElementById("error").textContent = "the gateway did not answer (" + e.message + "); retrying";
  }
}
refresh();
setInterval(refresh, 3000);
</script>
</body>
</html>
"""
