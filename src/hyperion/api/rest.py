"""The REST API (FastAPI). Thin: authenticate, decode, call ``ControlService``, encode.

OpenAPI is served at ``/openapi.json``; every route except ``/healthz`` needs
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from hyperion import __version__
from hyperion.api import auth
from hyperion.api.errors import BadRequest, ServiceError
from hyperion.api.service import ControlService

FOLLOW_POLL_S = 0.2
_JOB_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description":
            "A job document, the same fields as a `kind: Job` YAML document (see docs/jobs.md)."}}},
    }
}


class ORJSONResponse(JSONResponse):
    def render(self, content) -> bytes:
        return orjson.dumps(content)


def build_app(service: ControlService) -> FastAPI:
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

    @app.post("/v1/apply", summary="Create or update declarative objects (kind: Team, Queue)")
    async def apply(request: Request):
        principal = who(request)
        body = await body_json(request)
        if not isinstance(body, dict) or "documents" not in body:
            raise BadRequest("expected a JSON object {\"documents\": [...]}")
        return service.apply(principal, body["documents"])

    return app
