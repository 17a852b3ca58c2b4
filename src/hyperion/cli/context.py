"""Where the CLI finds things: the data dir, the control plane's address and the API token.

Resolution order (first that is set wins):

- data dir: ``--data-dir`` > ``$HYPERION_HOME`` > ``~/.hyperion``
- server:   ``--server``   > ``$HYPERION_SERVER`` > ``"api"`` in ``<data dir>/controlplane.json``
- token:    ``--token``    > ``$HYPERION_TOKEN``  > the file ``<data dir>/admin.token``

The ``resolve_*`` functions are pure over their arguments (an explicit ``env`` mapping) so they are
tested without touching the real environment. ``CliState`` is the object click carries in
``ctx.obj``; it resolves lazily, so ``hyperion up`` works before any of these exist.

Glossary: a *CliError* is a user-facing failure: its message is printed as ``error: ...`` and the
process exits with its ``exit_code`` (2 for bad input, 1 otherwise), never with a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperion.api.client import Client

CONTROLPLANE_FILE = "controlplane.json"
ADMIN_TOKEN_FILE = "admin.token"
AGENT_TOKEN_FILE = "agent.token"
CONFIG_FILE = "config.json"
LOG_FILE = "controlplane.log"


class CliError(Exception):
    """A failure to report to the user as ``error: <message>`` on stderr, then exit ``exit_code``.

    ``plain=True`` prints the message as is, for messages that are already fully formatted (the
    spec's ``file:line: field: message`` lines).
    """

    def __init__(self, message: str, exit_code: int = 1, plain: bool = False):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.plain = plain


def resolve_data_dir(option: str | None, env: Mapping[str, str]) -> Path:
    raw = option or env.get("HYPERION_HOME") or "~/.hyperion"
    return Path(raw).expanduser()


def read_controlplane(data_dir: Path) -> dict[str, Any] | None:
    """The daemon's ``controlplane.json``, or ``None`` when absent or unreadable."""
    try:
        info = json.loads((data_dir / CONTROLPLANE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def resolve_server(option: str | None, env: Mapping[str, str], data_dir: Path) -> str:
    server = option or env.get("HYPERION_SERVER")
    if not server:
        info = read_controlplane(data_dir) or {}
        server = info.get("api") if isinstance(info.get("api"), str) else None
    if not server:
        raise CliError(
            f"no control plane found for data dir {data_dir} (no {CONTROLPLANE_FILE}); "
            "start one with `hyperion up`, or pass --server URL / set HYPERION_SERVER")
    if "://" not in server:
        server = "http://" + server
    return server.rstrip("/")


def resolve_token(option: str | None, env: Mapping[str, str], data_dir: Path) -> str | None:
    """The API token, or ``None`` when none is configured (the server will answer 401)."""
    token = option or env.get("HYPERION_TOKEN")
    if token:
        return token.strip()
    try:
        token = (data_dir / ADMIN_TOKEN_FILE).read_text().strip()
    except OSError:
        return None
    return token or None


def token_source(option: str | None, env: Mapping[str, str], data_dir: Path) -> str:
    """Where the token came from, for error hints (never the token itself)."""
    if option:
        return "--token"
    if env.get("HYPERION_TOKEN"):
        return "$HYPERION_TOKEN"
    path = data_dir / ADMIN_TOKEN_FILE
    return str(path) if path.exists() else f"nothing ({path} does not exist)"


@dataclass
class CliState:
    """What the group options resolved to; commands ask it for a ``Client``."""

    data_dir_option: str | None = None
    server_option: str | None = None
    token_option: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    _client: Client | None = field(default=None, repr=False)
    _server: str | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return resolve_data_dir(self.data_dir_option, self.env)

    @property
    def server(self) -> str:
        if self._server is None:
            self._server = resolve_server(self.server_option, self.env, self.data_dir)
        return self._server

    @property
    def server_or_none(self) -> str | None:
        """The server address if one can be resolved, for messages; never raises."""
        try:
            return self.server
        except CliError:
            return None

    def token_hint(self) -> str:
        source = token_source(self.token_option, self.env, self.data_dir)
        return (f"the token used came from {source}; pass --token, set HYPERION_TOKEN, "
                f"or check {self.data_dir / ADMIN_TOKEN_FILE}")

    def client(self) -> Client:
        if self._client is None:
            token = resolve_token(self.token_option, self.env, self.data_dir)
            self._client = Client(self.server, token, timeout=self.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
