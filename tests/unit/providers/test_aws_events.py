"""``parse_event``: EventBridge spot interruption warnings and rebalance recommendations from SQS bodies."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from hyperion.providers.aws_events import InterruptionEvent, parse_event

T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()


def event(detail_type: str = "EC2 Spot Instance Interruption Warning", **detail) -> dict:
    return {"version": "0", "id": "ev-1", "detail-type": detail_type, "source": "aws.ec2", "account": "123456789012",
            "time": "2026-01-02T03:04:05Z", "region": "us-east-1", "resources": [],
            "detail": detail or {"instance-id": "i-0abc", "instance-action": "terminate"}}


@pytest.mark.parametrize(("body", "expected"), [
    (event(), InterruptionEvent("spot-interruption", "i-0abc", T, "terminate", "us-east-1", "ev-1")),
    (event(**{"instance-id": "i-1", "instance-action": "hibernate"}),
     InterruptionEvent("spot-interruption", "i-1", T, "hibernate", "us-east-1", "ev-1")),
    (event("EC2 Instance Rebalance Recommendation", **{"instance-id": "i-2"}),
     InterruptionEvent("rebalance-recommendation", "i-2", T, "", "us-east-1", "ev-1")),
    ({"Type": "Notification", "Message": json.dumps(event())},  # through SNS
     InterruptionEvent("spot-interruption", "i-0abc", T, "terminate", "us-east-1", "ev-1")),
])
def test_interruption_events_are_parsed(body, expected):
    assert parse_event(json.dumps(body)) == expected


def test_a_warning_has_a_two_minute_deadline_and_a_recommendation_none():
    assert parse_event(json.dumps(event())).deadline == T + 120
    assert parse_event(json.dumps(event("EC2 Instance Rebalance Recommendation", **{"instance-id": "i-2"}))).deadline is None


@pytest.mark.parametrize("detail_type", ["EC2 Instance State-change Notification", "AWS Health Event", None])
def test_other_events_are_none_without_a_warning(detail_type, caplog):
    assert parse_event(json.dumps(event(detail_type, **{"instance-id": "i-1"}))) is None
    assert not caplog.records


@pytest.mark.parametrize("body", [
    "not json", "[1, 2]", "null", json.dumps(event(**{"instance-action": "terminate"})),
    json.dumps(event(**{"instance-id": "", "instance-action": "terminate"})),
    json.dumps(event(**{"instance-id": "i-1", "instance-action": 7})),
    json.dumps({**event(), "time": "yesterday"}), json.dumps({**event(), "time": None}),
    json.dumps({**event(), "detail": "i-1"}), json.dumps({"Type": "Notification", "Message": "{"}),
])
def test_malformed_messages_are_none_with_a_warning(body, caplog):
    with caplog.at_level(logging.WARNING, "hyperion.providers.aws_events"):
        assert parse_event(body) is None
    assert "malformed" in caplog.text
