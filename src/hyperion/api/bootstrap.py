"""Short-lived bootstrap tokens: how a machine a node pool launched joins the control plane
without the installation-wide agent token in its user data.

The control plane mints one token per launch request (``mint``), hands it to the provider (the
``aws`` provider writes it into the instance's user data) and keeps only its SHA-256 digest, as
the record ``bootstrap-tokens/<digest>`` with its expiry. At ``Hello`` the agent channel
(``api.agents.AgentHub``) redeems it for the node id in the Hello (``redeem``):

- an unknown token is refused as any bad agent token is;
- an unused token past its expiry is refused ("expired");
- an unused, unexpired token is consumed: the record is bound to that node id;
- a consumed token admits only a reconnect of the node it was consumed by, never a second join:
  any other node id is refused ("already used").

*Exchange*: each time a node joins with its bootstrap token, it is issued a **node credential**
(``issue``; the ``Welcome`` carries it, the agent keeps it in its data dir, 0600) and presents that
from then on. The first time the credential is used (``check_credential``), the exchange is
complete: the node's bootstrap records are deleted, so the token in the instance's user data
(readable by any process there through the metadata service) admits nobody any more. Until then
the token still admits its node's reconnect (an agent that died before saving its credential
can rejoin). A credential admits only its node; both end when the node is forgotten
(``revoke_node``: its instance terminated).

Tokens and credentials themselves are never stored, logged or put in an error message: only
their SHA-256 digests are kept (records ``bootstrap-tokens/<digest>``, ``node-credentials/<digest>``).

Glossary:
    mint      make a fresh token (``secrets.token_urlsafe``) and record its digest and expiry.
    redeem    check a presented token at Hello: consume it, or admit its node's reconnect, or refuse.
    issue     make a node credential for a node that joined with its token.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from hyperion.api import auth
from hyperion.store.objects import ClusterState

PREFIX = "bootstrap-tokens/"
CREDENTIALS = "node-credentials/"
TOKEN_PREFIX = "hb1."  # tells a bootstrap token from the agent token at a glance (and in tests)
CREDENTIAL_PREFIX = "hn1."  # a node credential (exchanged for a bootstrap token)
DEFAULT_TTL_S = 900.0  # 15 minutes: long enough to boot and install, short enough to be useless later
KEEP_EXPIRED_S = 3600.0  # an expired, unused record is kept this long so its refusal says "expired"


class BootstrapRefused(Exception):
    """A bootstrap token that may not join (used by another node, or expired); the message says why."""


@dataclass(frozen=True, slots=True)
class BootstrapRecord:
    digest: str
    created_at: float
    expires_at: float
    purpose: str = ""  # e.g. "pool gpu" (what it was minted for; shown, never secret)
    node_id: str = ""  # set when consumed
    used_at: float | None = None

    def to_dict(self) -> dict:
        return {"digest": self.digest, "created_at": self.created_at, "expires_at": self.expires_at,
                "purpose": self.purpose, "node_id": self.node_id, "used_at": self.used_at}

    @staticmethod
    def from_dict(d: dict) -> BootstrapRecord:
        return BootstrapRecord(str(d["digest"]), float(d["created_at"]), float(d["expires_at"]), str(d.get("purpose", "")),
                               str(d.get("node_id", "")), d.get("used_at"))


class BootstrapTokens:
    """The bootstrap tokens of one control plane, as store records (cached: the control plane is
    the single writer of its store)."""

    def __init__(self, state: ClusterState, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.state = state
        self.ttl_s = ttl_s
        self.records: dict[str, BootstrapRecord] = {}
        for _, data in state.records(PREFIX):
            r = BootstrapRecord.from_dict(data)
            self.records[r.digest] = r
        self.credentials: dict[str, str] = {}  # credential digest -> its node id
        for key, data in state.records(CREDENTIALS):
            self.credentials[key.removeprefix(CREDENTIALS)] = str(data["node_id"])

    def mint(self, now: float, purpose: str = "") -> str:
        """A fresh token valid until ``now + ttl_s``; only its digest is kept."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = BootstrapRecord(auth.digest(token), now, now + self.ttl_s, purpose)
        stale = [d for d, r in self.records.items() if not r.node_id and now > r.expires_at + KEEP_EXPIRED_S]
        self.state.write_records({PREFIX + record.digest: record.to_dict()}, [PREFIX + d for d in stale])
        for d in stale:
            del self.records[d]
        self.records[record.digest] = record
        return token

    def known(self, token: str) -> bool:
        """A bootstrap token this control plane minted (used or not)."""
        return auth.digest(token) in self.records

    def is_credential(self, token: str) -> bool:
        return auth.digest(token) in self.credentials

    def issue(self, node_id: str, now: float) -> str:
        """A fresh credential for a node that joined with its bootstrap token (its earlier ones,
        never used, are dropped: one credential per node)."""
        credential = CREDENTIAL_PREFIX + secrets.token_urlsafe(32)
        digest = auth.digest(credential)
        older = [d for d, n in self.credentials.items() if n == node_id]
        self.state.write_records({CREDENTIALS + digest: {"node_id": node_id, "issued_at": now}},
                                 [CREDENTIALS + d for d in older])
        for d in older:
            del self.credentials[d]
        self.credentials[digest] = node_id
        return credential

    def check_credential(self, credential: str, node_id: str) -> None:
        """Admit ``node_id`` with its credential, completing the exchange (its bootstrap records are
        deleted); ``BootstrapRefused`` when the credential is another node's or unknown."""
        owner = self.credentials.get(auth.digest(credential))
        if owner is None:
            raise BootstrapRefused("invalid agent token")
        if owner != node_id:
            raise BootstrapRefused(f"this node credential belongs to node {owner}, not {node_id}")
        spent = [d for d, r in self.records.items() if r.node_id == node_id]
        if spent:
            self.state.write_records({}, [PREFIX + d for d in spent])
            for d in spent:
                del self.records[d]

    def redeem(self, token: str, node_id: str, now: float) -> BootstrapRecord:
        """Admit ``node_id`` with ``token`` (consuming it on first use) or raise ``BootstrapRefused``."""
        digest = auth.digest(token)
        record = self.records.get(digest)
        if record is None:
            raise BootstrapRefused("invalid agent token")
        if record.node_id:
            if record.node_id == node_id:
                return record  # its node reconnecting
            raise BootstrapRefused(f"bootstrap token already used (by node {record.node_id}); a bootstrap token joins "
                                   "one node once: launch a new machine, or give this agent the agent token")
        if now > record.expires_at:
            raise BootstrapRefused(f"bootstrap token expired {now - record.expires_at:.0f} s ago (valid "
                                   f"{record.expires_at - record.created_at:.0f} s from its launch); launch a new machine")
        used = BootstrapRecord(record.digest, record.created_at, record.expires_at, record.purpose, node_id, now)
        self.state.write_records({PREFIX + digest: used.to_dict()})
        self.records[digest] = used
        return used

    def revoke_node(self, node_id: str) -> int:
        """Forget the tokens consumed by ``node_id`` and its credentials (its machine is gone);
        returns how many."""
        gone = [d for d, r in self.records.items() if r.node_id == node_id]
        creds = [d for d, n in self.credentials.items() if n == node_id]
        if gone or creds:
            self.state.write_records({}, [PREFIX + d for d in gone] + [CREDENTIALS + d for d in creds])
            for d in gone:
                del self.records[d]
            for d in creds:
                del self.credentials[d]
        return len(gone) + len(creds)
