"""Spot interruption and rebalance events from AWS, read from an SQS queue (as Karpenter does).

An EventBridge rule sends ``EC2 Spot Instance Interruption Warning`` and ``EC2 Instance Rebalance
Recommendation`` events to an SQS queue (docs/aws.md shows the rule and the queue policy);
``SqsInterruptions.poll`` receives a batch, parses each message and deletes every message it
received, whether it was one of ours or not, so nothing is delivered again and again.

Glossary:
    warning         ``kind == "spot-interruption"``: EC2 will stop, hibernate or terminate the spot
                    instance (``action``) about two minutes after the event time (``deadline``).
    rebalance       ``kind == "rebalance-recommendation"``: the instance is at elevated risk of
                    interruption; no deadline (``deadline`` is None). A good moment to drain.

``parse_event`` is pure: it reads the message body (the EventBridge event itself, or an SNS
notification wrapping one) and returns an ``InterruptionEvent`` or None; it never raises. boto3 is
imported when ``SqsInterruptions`` first needs a client; its errors are collected for
``drain_errors()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hyperion.ports.provider import ProviderError

__all__ = ["InterruptionEvent", "SqsInterruptions", "parse_event"]

log = logging.getLogger("hyperion.providers.aws_events")

SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE = "EC2 Instance Rebalance Recommendation"
KINDS = {SPOT_WARNING: "spot-interruption", REBALANCE: "rebalance-recommendation"}
WARNING_S = 120.0  # EC2 acts this long after a spot interruption warning


@dataclass(frozen=True, slots=True)
class InterruptionEvent:
    kind: str  # "spot-interruption" | "rebalance-recommendation"
    instance_id: str
    time: float  # the event's time, seconds since the epoch
    action: str = ""  # warnings: "terminate" | "stop" | "hibernate"
    region: str = ""
    event_id: str = ""

    @property
    def deadline(self) -> float | None:
        """When EC2 acts on a spot warning; None for a rebalance recommendation."""
        return self.time + WARNING_S if self.kind == "spot-interruption" else None


def parse_event(body: str) -> InterruptionEvent | None:
    """The interruption event in an SQS message body; None for other events and (with a warning) malformed ones."""
    try:
        event = json.loads(body)
        if isinstance(event, dict) and event.get("Type") == "Notification" and isinstance(event.get("Message"), str):
            event = json.loads(event["Message"])  # delivered through SNS
        if not isinstance(event, dict):
            raise ValueError("not a JSON object")
        kind = KINDS.get(event.get("detail-type"))
        if kind is None:
            return None
        detail = event.get("detail")
        if not isinstance(detail, dict) or not isinstance(detail.get("instance-id"), str) or not detail["instance-id"]:
            raise ValueError("detail.instance-id is missing")
        action = detail.get("instance-action", "")
        if kind == "spot-interruption" and not isinstance(action, str):
            raise ValueError("detail.instance-action is not a string")
        return InterruptionEvent(kind=kind, instance_id=detail["instance-id"], time=_epoch(event.get("time")),
                                 action=action if isinstance(action, str) else "", region=str(event.get("region", "")),
                                 event_id=str(event.get("id", "")))
    except (ValueError, TypeError) as exc:
        log.warning("ignoring a malformed interruption message (%s): %.200r", exc, body)
        return None


def _epoch(text: Any) -> float:
    if not isinstance(text, str):
        raise ValueError("time is missing")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class SqsInterruptions:
    """Receives, parses and deletes interruption events from one SQS queue."""

    def __init__(self, queue_url: str, region: str, endpoint_url: str | None = None, session: Any = None) -> None:
        self.queue_url, self.region, self.endpoint_url = queue_url, region, endpoint_url
        self._session = session
        self._client_obj: Any = None
        self._lock = threading.Lock()
        self._errors: list[ProviderError] = []

    def __repr__(self) -> str:
        return f"SqsInterruptions(queue_url={self.queue_url!r}, region={self.region!r})"

    async def poll(self, max_messages: int = 10, wait_s: int = 0) -> list[InterruptionEvent]:
        """One receive (long-polling up to ``wait_s``): the interruption events in it, oldest first."""
        try:
            return await asyncio.to_thread(self._poll_sync, max(1, min(max_messages, 10)), max(0, min(wait_s, 20)))
        except Exception as exc:  # noqa: BLE001 - collected, never raised
            self._error(f"receive from {self.queue_url}: {_describe(exc)}")
            return []

    def drain_errors(self) -> list[ProviderError]:
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    def _poll_sync(self, max_messages: int, wait_s: int) -> list[InterruptionEvent]:
        client = self._client()
        messages = client.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=max_messages,
                                          WaitTimeSeconds=wait_s).get("Messages", [])
        events = [e for m in messages if (e := parse_event(m.get("Body", ""))) is not None]
        if messages:
            self._delete(client, messages)
        return sorted(events, key=lambda e: e.time)

    def _delete(self, client: Any, messages: Iterable[dict]) -> None:
        entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
        try:
            failed = client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries).get("Failed", [])
        except Exception as exc:  # noqa: BLE001 - the messages come back after their visibility timeout
            self._error(f"delete from {self.queue_url}: {_describe(exc)}")
            return
        for f in failed:
            self._error(f"delete from {self.queue_url}: {f.get('Code')}: {f.get('Message', '')}")

    def _client(self) -> Any:
        with self._lock:
            if self._client_obj is None:
                try:
                    import boto3
                except ImportError:
                    raise ImportError("reading interruption events needs boto3: pip install 'hyperion[aws]'") from None
                session = self._session or boto3.session.Session()
                self._client_obj = session.client("sqs", region_name=self.region, endpoint_url=self.endpoint_url)
            return self._client_obj

    def _error(self, message: str) -> None:
        log.warning("aws events: %s", message)
        with self._lock:
            self._errors.append(ProviderError(request_id="sqs-interruptions", message=message))


def _describe(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return f"{response['Error'].get('Code', 'error')}: {response['Error'].get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"
