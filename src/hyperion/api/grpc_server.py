"""gRPC services of the blueprint: ``FederationScheduler.SubmitJob`` and ``NodeObserver.ReportMetrics``.

Both authenticate with the same bearer tokens as REST (metadata ``authorization``) and call the
same ``ControlService``. ``AgentControl`` lives in ``api.agents``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from hyperion.api import auth
from hyperion.api._generated.hyperion.v1 import agent_pb2_grpc, hyperion_pb2_grpc
from hyperion.api._generated.hyperion.v1 import hyperion_pb2 as pb
from hyperion.api.agents import AgentHub
from hyperion.api.errors import ServiceError
from hyperion.api.service import ControlService
from hyperion.api.wire import job_doc_from_pb, metrics_from_pb

_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
          403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
          409: grpc.StatusCode.ALREADY_EXISTS, 422: grpc.StatusCode.INVALID_ARGUMENT}


def _principal(service: ControlService, context: grpc.aio.ServicerContext) -> auth.Principal:
    return service.authenticate(auth.bearer(dict(context.invocation_metadata()).get("authorization")))


async def _abort(context: grpc.aio.ServicerContext, err: ServiceError) -> None:
    detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in err.detail or [])
    await context.abort(_CODES.get(err.status, grpc.StatusCode.INTERNAL), err.message + (f" ({detail})" if detail else ""))


class FederationScheduler(hyperion_pb2_grpc.FederationSchedulerServicer):
    def __init__(self, service: ControlService) -> None:
        self.service = service

    async def SubmitJob(self, request: pb.AIJob, context: grpc.aio.ServicerContext) -> pb.JobStatus:
        try:
            job = self.service.submit(_principal(self.service, context), job_doc_from_pb(request))
        except ServiceError as err:
            await _abort(context, err)
        routed = job.get("federation")
        where = f"; routed to member {routed['cluster']}" if routed else ""
        return pb.JobStatus(job_id=job["id"], status_message=f"accepted; phase {job['phase']}{where}", phase=job["phase"],
                            cluster=routed["cluster"] if routed else "")


class NodeObserver(hyperion_pb2_grpc.NodeObserverServicer):
    """Accepts metrics streams from agents or any exporter holding the agent or admin token."""

    def __init__(self, service: ControlService, agent_token: str) -> None:
        self.service = service
        self._agent_digest = auth.digest(agent_token)

    async def ReportMetrics(self, requests: AsyncIterator[pb.NodeMetrics], context) -> pb.Ack:
        token = auth.bearer(dict(context.invocation_metadata()).get("authorization"))
        if token is None or not auth.same(auth.digest(token), self._agent_digest):
            try:
                if not _principal(self.service, context).is_admin:
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "metrics need the agent or admin token")
            except ServiceError as err:
                await _abort(context, err)
        count = 0
        async for m in requests:
            if m.node_id:
                self.service.record_metrics(metrics_from_pb(m))
                count += 1
        return pb.Ack(success=True, message=f"{count} sample(s)")


def add_services(server: grpc.aio.Server, service: ControlService, agent_token: str, hub: AgentHub) -> None:
    hyperion_pb2_grpc.add_FederationSchedulerServicer_to_server(FederationScheduler(service), server)
    hyperion_pb2_grpc.add_NodeObserverServicer_to_server(NodeObserver(service, agent_token), server)
    agent_pb2_grpc.add_AgentControlServicer_to_server(hub, server)
