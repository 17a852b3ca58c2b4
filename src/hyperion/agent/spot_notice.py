"""The EC2 spot interruption notice, read by the agent from the instance metadata service.

Two minutes before EC2 stops, hibernates or terminates a spot instance, the document
``/latest/meta-data/spot/instance-action`` appears::

    {"action": "terminate", "time": "2017-09-18T08:22:00Z"}

Until then the path answers 404. ``parse_instance_action`` reads an answer (status and body) and is
pure; ``SpotNoticePoller`` asks the endpoint, with an IMDSv2 session token (PUT
``/latest/api/token``) when the service gives one and without when it does not (IMDSv1). The
endpoint is configurable so tests point it at a local HTTP server. Wiring the poller into the agent
loop (cordon, checkpoint, report the notice) is the agent's job, not this module's.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

__all__ = ["DEFAULT_ENDPOINT", "SpotNotice", "SpotNoticePoller", "parse_instance_action"]

log = logging.getLogger("hyperion.agent.spot_notice")

DEFAULT_ENDPOINT = "http://169.254.169.254/latest/meta-data/spot/instance-action"
TOKEN_TTL_S = 21600
ACTIONS = frozenset({"terminate", "stop", "hibernate"})


@dataclass(frozen=True, slots=True)
class SpotNotice:
    action: str  # "terminate" | "stop" | "hibernate"
    time: float  # when EC2 acts, seconds since the epoch


def parse_instance_action(status: int, body: str) -> SpotNotice | None:
    """The notice in an answer of ``spot/instance-action``; None for 404 (no notice).

    Raises ``ValueError`` for any other status or a body that is not the documented JSON.
    """
    if status == 404:
        return None
    if status != 200:
        raise ValueError(f"spot/instance-action answered HTTP {status}")
    try:
        doc = _json(body)
        action, when = doc["action"], doc["time"]
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        moment = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"spot/instance-action is not {{\"action\", \"time\"}}: {exc}") from None
    return SpotNotice(action=action, time=(moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def _json(body: str) -> dict:
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


class SpotNoticePoller:
    """Asks the metadata service for a spot interruption notice; ``poll()`` returns it or None.

    Failures (no metadata service, timeouts, a malformed answer) return None, are logged once per
    kind and kept in ``last_error``; they never raise.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, token_url: str | None = None, timeout_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, transport: httpx.AsyncBaseTransport | None = None) -> None:
        parts = urlsplit(endpoint)
        self.endpoint = endpoint
        self.token_url = token_url or f"{parts.scheme}://{parts.netloc}/latest/api/token"
        self.timeout_s, self._clock, self._transport = timeout_s, clock, transport
        self._token: str | None = None
        self._token_until = 0.0
        self._imdsv1 = False  # the token endpoint refused: ask without a token
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"SpotNoticePoller(endpoint={self.endpoint!r})"

    async def poll(self) -> SpotNotice | None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, transport=self._transport) as client:
                response = await self._get(client)
                if response.status_code == 401 and not self._imdsv1:  # the session token expired early
                    self._token = None
                    response = await self._get(client)
            notice = parse_instance_action(response.status_code, response.text)
        except (httpx.HTTPError, ValueError) as exc:
            self._failed(str(exc) or type(exc).__name__)
            return None
        self.last_error = None
        return notice

    async def _get(self, client: httpx.AsyncClient) -> httpx.Response:
        token = await self._session_token(client)
        headers = {"X-aws-ec2-metadata-token": token} if token else {}
        return await client.get(self.endpoint, headers=headers)

    async def _session_token(self, client: httpx.AsyncClient) -> str | None:
        if self._imdsv1:
            return None
        if self._token is not None and self._clock() < self._token_until:
            return self._token
        response = await client.put(self.token_url, headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)})
        if response.status_code in (403, 404, 405):
            self._imdsv1 = True
            return None
        if response.status_code != 200 or not response.text.strip():
            raise ValueError(f"the IMDSv2 token endpoint answered HTTP {response.status_code}")
        self._token, self._token_until = response.text.strip(), self._clock() + TOKEN_TTL_S - 60
        return self._token

    def _failed(self, message: str) -> None:
        if message != self.last_error:
            log.warning("spot notice: cannot read %s: %s", self.endpoint, message)
        self.last_error = message
