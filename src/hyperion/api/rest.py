"""The REST API (FastAPI). Thin: authenticate, decode, call ``ControlService``, encode.

OpenAPI is served at ``/openapi.json``; every route except ``/healthz`` (and the dashboard's static
page under ``/ui/``, which holds no data) needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from hyperion import __version__
from hyperion.api import auth
from hyperion.api.dashboard import Dashboard
from hyperion.api.errors import BadRequest, Forbidden, ServiceError
from hyperion.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from hyperion.api.service import ControlService
from hyperion.api.spec import parse_time

FOLLOW_POLL_S = 0.2
WEB_DIR = Path(__file__).resolve().parent / "web"  # the dashboard's page, served at /ui/
_JOB_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description":
            "A job document, the same fields as a `kind: Job` YAML document (see docs/jobs.md)."}}},
    }
}


def _time(name: str, value: str | None) -> float | None:
    """A query parameter that is a time: ISO-8601 with a timezone, or seconds since the epoch."""
    if value is None or value == "":
        return None
    try:
        return parse_time(float(value) if value.replace(".", "", 1).isdigit() else value)
    except ValueError as err:
        raise BadRequest(f"{name}: {err}") from None


class ORJSONResponse(JSONResponse):
    def render(self, content) -> bytes:
        return orjson.dumps(content)


def build_app(service: ControlService, metrics_digest: str | None = None) -> FastAPI:
    """``metrics_digest``: SHA-256 of the metrics token, which reads ``/metrics`` and nothing else."""
    app = FastAPI(title="Hyperion", version=__version__, default_response_class=ORJSONResponse,
                  docs_url="/docs", redoc_url=None)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError):
        return ORJSONResponse(exc.body(), status_code=exc.status)

    def who(request: Request) -> auth.Principal:
        return service.authenticate(auth.bearer(request.headers.get("authorization")))

    async def body_json(request: Request):
        raw = await request.body()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise BadRequest(f"the request body is not valid JSON: {err}") from None

    @app.get("/healthz", include_in_schema=False)
    async def healthz():
        return {"ok": True, "version": __version__, "scheduler": service.scheduler_stats()}

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request):
        """Prometheus exposition; the admin token or the metrics token (<data dir>/metrics.token)."""
        token = auth.bearer(request.headers.get("authorization"))
        if not (token and metrics_digest and auth.same(auth.digest(token), metrics_digest)) \
                and not service.authenticate(token).is_admin:
            raise Forbidden("only the admin token or the metrics token (<data dir>/metrics.token) may read /metrics")
        return Response(service.instruments.render(), media_type=METRICS_CONTENT_TYPE)

    @app.post("/v1/jobs", status_code=201, openapi_extra=_JOB_BODY, summary="Submit a job")
    async def submit(request: Request):
        principal = who(request)
        return ORJSONResponse(service.submit(principal, await body_json(request)), status_code=201)

    @app.get("/v1/jobs", summary="List jobs (your team's; all teams for the admin)")
    async def list_jobs(request: Request, phase: str | None = None, team: str | None = None,
                        limit: int = Query(1000), offset: int = Query(0)):
        phases = {p.strip() for p in phase.split(",") if p.strip()} if phase else None
        return service.list_jobs(who(request), phases, team, limit, offset)

    @app.get("/v1/jobs/{job_id}", summary="One job, with the reason it is in its phase")
    async def get_job(request: Request, job_id: str):
        return service.get_job(who(request), job_id)

    @app.get("/v1/jobs/{job_id}/explain", summary="Why a job is pending: queue position, who is ahead, reasons, estimated start")
    async def explain_job(request: Request, job_id: str):
        return service.explain_job(who(request), job_id)

    @app.delete("/v1/jobs/{job_id}", summary="Cancel a job (stops all its ranks)")
    async def cancel_job(request: Request, job_id: str):
        return service.cancel_job(who(request), job_id)

    @app.get("/v1/jobs/{job_id}/logs", summary="A rank's log; follow=true streams until the job ends",
             response_class=Response)
    async def job_logs(request: Request, job_id: str, rank: int = 0, follow: bool = False, offset: int = 0):
        principal = who(request)
        if not follow:
            data, _ = service.read_logs(principal, job_id, rank, offset)
            return Response(data, media_type="text/plain; charset=utf-8")

        async def stream():
            sent = offset
            while True:
                data, done = service.read_logs(principal, job_id, rank, sent)
                if data:
                    sent += len(data)
                    yield data
                if done:
                    return
                if await request.is_disconnected():
                    return
                await asyncio.sleep(FOLLOW_POLL_S)

        return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")

    @app.get("/v1/nodes", summary="Nodes, their GPUs, allocation and latest telemetry")
    async def nodes(request: Request):
        return service.list_nodes(who(request))

    @app.get("/v1/queues", summary="Queues: quota, cohort, weight, what their jobs hold, how many wait")
    async def queues(request: Request):
        return service.list_queues(who(request))

    @app.get("/v1/cost", summary="Cost, GPU-hours, energy and carbon per team (or per job) over a time range")
    async def cost(request: Request, team: str | None = None, start: str | None = Query(None, alias="from"),
                   end: str | None = Query(None, alias="to"), by: str = "team"):
        return service.cost(who(request), team, _time("from", start), _time("to", end), by)

    @app.get("/v1/budgets", summary="Budgets with what their team spent this period")
    async def budgets(request: Request):
        return service.budgets(who(request))

    @app.get("/v1/clusters", summary="Federation members: capacity, GPUs committed, prices, current carbon intensity")
    async def clusters(request: Request):
        return service.list_clusters(who(request))

    @app.delete("/v1/clusters/{name}", summary="Remove a federation member (admin)")
    async def delete_cluster(request: Request, name: str):
        return service.delete_cluster(who(request), name)

    @app.get("/v1/nodepools", summary="Node pools (kind: NodePool) with their instances and lifecycle states")
    async def nodepools(request: Request):
        return service.list_nodepools(who(request))

    @app.delete("/v1/nodepools/{name}", summary="Remove a node pool (admin); its instances are terminated")
    async def delete_nodepool(request: Request, name: str):
        return service.delete_nodepool(who(request), name)

    @app.post("/v1/federation/plan", openapi_extra=_JOB_BODY,
              summary="Where the federation would send a job now, without submitting it")
    async def federation_plan(request: Request):
        principal = who(request)
        return service.plan(principal, await body_json(request))

    @app.post("/v1/apply", summary="Create or update declarative objects (kind: Team, Queue, Budget, Pricing, Cluster, NodePool)")
    async def apply(request: Request):
        principal = who(request)
        body = await body_json(request)
        if not isinstance(body, dict) or "documents" not in body:
            raise BadRequest("expected a JSON object {\"documents\": [...]}")
        return service.apply(principal, body["documents"])

    # ---- the web dashboard: views aggregated on the server (api/dashboard.py), page at /ui/ ----
    board = Dashboard(service)

    @app.get("/v1/dashboard/summary", summary="Dashboard: jobs by phase, GPUs, nodes, pending jobs per queue, scheduler")
    async def dashboard_summary(request: Request):
        return board.summary(who(request))

    @app.get("/v1/dashboard/pending", summary="Dashboard: pending jobs in scheduling order, why they wait, estimated start")
    async def dashboard_pending(request: Request, queue: str | None = None, offset: str | None = None,
                                limit: str | None = None):
        return board.pending(who(request), queue, offset, limit)

    @app.get("/v1/dashboard/running", summary="Dashboard: running jobs, their GPUs and the GPUs' live utilisation")
    async def dashboard_running(request: Request, offset: str | None = None, limit: str | None = None):
        return board.running(who(request), offset, limit)

    @app.get("/v1/dashboard/nodes", summary="Dashboard: nodes, state, condition, free GPUs, latest telemetry")
    async def dashboard_nodes(request: Request, offset: str | None = None, limit: str | None = None, q: str | None = None):
        return board.nodes(who(request), offset, limit, q)

    @app.get("/v1/dashboard/nodes/{node_id}/metrics", summary="Dashboard: a node's GPU telemetry history, downsampled")
    async def dashboard_node_metrics(request: Request, node_id: str, points: str | None = None):
        return board.node_metrics(who(request), node_id, points)

    @app.get("/v1/dashboard/cost", summary="Dashboard: cost, GPU-hours, energy and carbon per team over time; budgets")
    async def dashboard_cost(request: Request, start: str | None = Query(None, alias="from"),
                             end: str | None = Query(None, alias="to"), step: str | None = None, team: str | None = None):
        return board.cost(who(request), start, end, step, team)

    @app.get("/v1/dashboard/events", summary="Dashboard: recent events (preemptions, hand-overs, budgets, nodes), newest first")
    async def dashboard_events(request: Request, kind: str | None = None, limit: str | None = None,
                               before: str | None = None):
        return board.events(who(request), kind, limit, before)

    app.mount("/ui", StaticFiles(directory=WEB_DIR, html=True), name="ui")  # static: no data, no token

    @app.get("/", include_in_schema=False)
    async def root():
        return RedirectResponse("/ui/")

    return app
