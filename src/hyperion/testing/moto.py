"""A real moto server (``moto[server]``) on loopback, for tests of the AWS provider: the AWS APIs
Hyperion calls (EC2, SQS), answered locally. Dummy credentials go in the environment so boto3 never
looks for real ones.

    with moto_server(tmp_dir) as url:
        AwsProvider(..., endpoint_url=url)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REGION = "us-east-1"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; waits for the process either way."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def moto_server(log_dir: str | Path, start_timeout: float = 30.0) -> Iterator[str]:
    """Start ``python -m moto.server`` on a free loopback port, with dummy AWS credentials in
    ``os.environ`` (restored afterwards); yields its URL; stops it on exit. The server's output goes
    to ``log_dir/moto.log``."""
    saved = {key: os.environ.get(key) for key in (*AWS_ENV, "AWS_PROFILE")}
    os.environ.update(AWS_ENV)
    os.environ.pop("AWS_PROFILE", None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = Path(log_dir) / "moto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if httpx.get(f"{url}/moto-api/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start (exit {proc.poll()}); see {log_path}")
            time.sleep(0.1)
        yield url
    finally:
        stop(proc)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
