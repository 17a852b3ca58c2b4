"""A small synchronous REST client for the control plane: one method per endpoint.

``Client`` speaks the JSON API served by ``hyperion.api.rest`` and returns plain decoded JSON
(dicts and lists), the same shapes ``-o json`` prints. It knows nothing about terminals, exit
codes or where tokens live; the CLI (``hyperion.cli``) resolves those and hands them in.

Errors:
- a non-2xx answer raises ``ApiError(status, message, detail)``; ``detail`` is the server's list of
  ``{"loc": [...], "line": int|None, "msg": str}`` entries (422) or ``[]``;
- transport failures (connection refused, timeouts) are left as ``httpx.TransportError`` so the
  caller can tell "the server said no" from "there is no server".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Self
from urllib.parse import quote

import httpx

__all__ = ["ApiError", "Client"]


class ApiError(Exception):
    """The control plane answered with a non-2xx status."""

    def __init__(self, status: int, message: str, detail: list[dict[str, Any]] | None = None):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.detail = list(detail or [])

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Read ``{"message", "detail"}`` (ours) or ``{"detail": ...}`` (FastAPI's defaults)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        message = ""
        detail: list[dict[str, Any]] = []
        if isinstance(body, dict):
            raw_detail = body.get("detail")
            if isinstance(raw_detail, list):
                detail = [d if isinstance(d, dict) else {"loc": [], "msg": str(d)} for d in raw_detail]
            elif isinstance(raw_detail, str):
                message = raw_detail
            if isinstance(body.get("message"), str) and body["message"]:
                message = body["message"]
        if not message:
            text = response.text.strip() if body is None else ""
            message = text[:500] or response.reason_phrase or f"HTTP {response.status_code}"
        return cls(response.status_code, message, detail)


class Client:
    """Synchronous client for the control plane's REST API (``/healthz``, ``/v1/...``).

    Use as a context manager, or call ``close()``. ``token`` may be ``None`` for endpoints that
    need no authentication (``healthz``).
    """

    def __init__(self, base_url: str, token: str | None, timeout: float = 30,
                 transport: httpx.BaseTransport | None = None):
        headers = {"Accept": "application/json", "User-Agent": "hyperion-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                  transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:  # never shows the token
        return f"Client({self.base_url!r})"

    # -- plumbing ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if not response.is_success:
            raise ApiError.from_response(response)
        if not response.content:
            return None
        return response.json()

    # -- endpoints -----------------------------------------------------------------------------

    def healthz(self) -> dict[str, Any]:
        """GET /healthz. Raises ``ApiError`` when the server reports itself unhealthy."""
        body = self._request("GET", "/healthz")
        return body if isinstance(body, dict) else {"status": body}

    def list_jobs(self, phases: Iterable[str] | None = None, team: str | None = None) -> dict[str, Any]:
        """GET /v1/jobs -> ``{"items": [job...], "total": N}``; ``phases=None`` means all phases."""
        params: dict[str, str] = {}
        if phases is not None:
            params["phase"] = ",".join(phases)
        if team:
            params["team"] = team
        return self._request("GET", "/v1/jobs", params=params)

    def get_job(self, job_id: str) -> dict[str, Any]:
        """GET /v1/jobs/{id} -> job."""
        return self._request("GET", f"/v1/jobs/{_segment(job_id)}")

    def explain_job(self, job_id: str) -> dict[str, Any]:
        """GET /v1/jobs/{id}/explain -> queue position, jobs ahead, reasons, estimated start."""
        return self._request("GET", f"/v1/jobs/{_segment(job_id)}/explain")

    def submit_job(self, document: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/jobs with one raw Job document -> the created job."""
        return self._request("POST", "/v1/jobs", json=document)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """DELETE /v1/jobs/{id} -> the job as it is after the cancel request."""
        return self._request("DELETE", f"/v1/jobs/{_segment(job_id)}") or {}

    def job_logs(self, job_id: str, rank: int = 0, follow: bool = False) -> Iterator[bytes]:
        """GET /v1/jobs/{id}/logs, yielded in chunks as they arrive.

        With ``follow=True`` there is no read timeout: the stream ends when the job does (or the
        caller stops iterating). ``ApiError`` is raised on the first ``next()``.
        """
        params = {"rank": str(rank), "follow": "true" if follow else "false"}
        timeout = httpx.Timeout(self.timeout, read=None) if follow else httpx.Timeout(self.timeout)
        with self._http.stream("GET", f"/v1/jobs/{_segment(job_id)}/logs", params=params,
                               timeout=timeout) as response:
            if not response.is_success:
                response.read()
                raise ApiError.from_response(response)
            yield from response.iter_bytes()

    def list_nodes(self) -> dict[str, Any]:
        """GET /v1/nodes -> ``{"items": [node...]}``."""
        return self._request("GET", "/v1/nodes")

    def list_queues(self) -> dict[str, Any]:
        """GET /v1/queues -> ``{"items": [queue...]}``: definition, usage and pending count of each."""
        return self._request("GET", "/v1/queues")

    def cost(self, team: str | None = None, start: float | None = None, end: float | None = None,
             by: str = "team") -> dict[str, Any]:
        params = {k: v for k, v in (("team", team), ("from", start), ("to", end), ("by", by)) if v is not None}
        return self._request("GET", "/v1/cost", params=params)

    def budgets(self) -> dict[str, Any]:
        return self._request("GET", "/v1/budgets")

    def list_clusters(self) -> dict[str, Any]:
        """GET /v1/clusters -> ``{"profile": str, "items": [member...]}``: the federation's members."""
        return self._request("GET", "/v1/clusters")

    def delete_cluster(self, name: str) -> dict[str, Any]:
        return self._request("DELETE", f"/v1/clusters/{_segment(name)}")

    def list_nodepools(self) -> dict[str, Any]:
        """GET /v1/nodepools -> ``{"items": [pool...]}``: node pools with their instances."""
        return self._request("GET", "/v1/nodepools")

    def delete_nodepool(self, name: str) -> dict[str, Any]:
        return self._request("DELETE", f"/v1/nodepools/{_segment(name)}")

    def apply(self, documents: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /v1/apply ``{"documents": [...]}`` -> ``{"results": [{kind, name, action, token?}]}``."""
        return self._request("POST", "/v1/apply", json={"documents": documents})


def _segment(value: str) -> str:
    """Quote one path segment so an id like ``../x`` cannot walk the URL."""
    return quote(str(value), safe="")
