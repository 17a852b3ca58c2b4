"""Tokens and principals.

The admin token and the agent token live in files in the data dir (mode 0600), created on first
start. Team tokens are given by ``kind: Team`` documents (or generated) and stored only as
SHA-256 digests. A principal is who a request acts for: the admin, or one team.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Principal:
    team: str | None  # None: the admin, who sees every team

    @property
    def is_admin(self) -> bool:
        return self.team is None

    def may_see(self, team: str) -> bool:
        return self.team is None or self.team == team


ADMIN = Principal(None)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def ensure_token_file(path: Path) -> str:
    """Read the token in ``path``, creating it (mode 0600) with a fresh token if missing."""
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
