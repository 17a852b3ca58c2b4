"""The agent's spot notice (``hyperion.agent.spot_notice``): the parser, and the poller against a tiny
local metadata server (IMDSv2 token, IMDSv1 fallback, expired token, failures)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hyperion.agent.spot_notice import SpotNotice, SpotNoticePoller, parse_instance_action

NOTICE = json.dumps({"action": "terminate", "time": "2017-09-18T08:22:00Z"})
WHEN = 1505722920.0  # 2017-09-18T08:22:00Z


@pytest.mark.parametrize(("status", "body", "expected"), [
    (404, "", None),
    (200, NOTICE, SpotNotice("terminate", WHEN)),
    (200, json.dumps({"action": "stop", "time": "2017-09-18T08:22:00+00:00"}), SpotNotice("stop", WHEN)),
    (200, json.dumps({"action": "hibernate", "time": "2017-09-18T08:22:00"}), SpotNotice("hibernate", WHEN)),
])
def test_instance_action_documents_are_parsed(status, body, expected):
    assert parse_instance_action(status, body) == expected


@pytest.mark.parametrize(("status", "body"), [
    (500, ""), (403, ""), (200, "{"), (200, "[]"), (200, json.dumps({"action": "terminate"})),
    (200, json.dumps({"action": "reboot", "time": "2017-09-18T08:22:00Z"})),
    (200, json.dumps({"action": "terminate", "time": "soon"})),
])
def test_anything_else_is_a_value_error(status, body):
    with pytest.raises(ValueError):
        parse_instance_action(status, body)


class Metadata:
    """What the fake metadata service answers, and what it was asked."""

    def __init__(self) -> None:
        self.notice: str | None = None
        self.imdsv1_only = False
        self.valid_tokens = {"tok-1"}
        self.next_token = "tok-1"
        self.token_puts = 0
        self.seen_tokens: list[str | None] = []


@pytest.fixture
def metadata():
    state = Metadata()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def reply(self, status: int, body: str = "") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            if self.path != "/latest/api/token" or state.imdsv1_only:
                return self.reply(405)
            assert self.headers["X-aws-ec2-metadata-token-ttl-seconds"]
            state.token_puts += 1
            return self.reply(200, state.next_token)

        def do_GET(self) -> None:
            token = self.headers.get("X-aws-ec2-metadata-token")
            state.seen_tokens.append(token)
            if self.path != "/latest/meta-data/spot/instance-action":
                return self.reply(404)
            if not state.imdsv1_only and token not in state.valid_tokens:
                return self.reply(401)
            return self.reply(404) if state.notice is None else self.reply(200, state.notice)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/latest/meta-data/spot/instance-action"
    yield state
    server.shutdown()
    server.server_close()


def poll(poller: SpotNoticePoller) -> SpotNotice | None:
    return asyncio.run(poller.poll())


def test_no_notice_then_a_notice_with_one_imdsv2_token(metadata):
    poller = SpotNoticePoller(metadata.url)
    assert poll(poller) is None
    metadata.notice = NOTICE
    assert poll(poller) == SpotNotice("terminate", WHEN)
    assert metadata.token_puts == 1 and metadata.seen_tokens == ["tok-1", "tok-1"]
    assert poller.last_error is None


def test_imdsv1_only_asks_without_a_token(metadata):
    metadata.imdsv1_only, metadata.notice = True, NOTICE
    poller = SpotNoticePoller(metadata.url)
    assert poll(poller) == SpotNotice("terminate", WHEN)
    assert poll(poller) == SpotNotice("terminate", WHEN)
    assert metadata.seen_tokens == [None, None]


def test_a_rejected_token_is_fetched_again(metadata):
    poller = SpotNoticePoller(metadata.url)
    assert poll(poller) is None
    metadata.valid_tokens, metadata.next_token = {"tok-2"}, "tok-2"  # the service restarted
    metadata.notice = NOTICE
    assert poll(poller) == SpotNotice("terminate", WHEN)
    assert metadata.seen_tokens == ["tok-1", "tok-1", "tok-2"]


def test_an_expired_token_is_renewed_by_the_clock(metadata):
    now = [0.0]
    poller = SpotNoticePoller(metadata.url, clock=lambda: now[0])
    poll(poller)
    now[0] = 30000.0  # past the 6 h TTL
    poll(poller)
    assert metadata.token_puts == 2


def test_a_malformed_notice_is_none_and_kept_as_last_error(metadata):
    metadata.notice = "{"
    poller = SpotNoticePoller(metadata.url)
    assert poll(poller) is None and "spot/instance-action" in poller.last_error


def test_no_metadata_service_is_none_and_kept_as_last_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once closed
    poller = SpotNoticePoller(f"http://127.0.0.1:{port}/latest/meta-data/spot/instance-action", timeout_s=0.5)
    assert poll(poller) is None and poller.last_error
    assert poller.token_url == f"http://127.0.0.1:{port}/latest/api/token"
