"""The policies a simulation compares: each is a profile of the scheduling framework
(``core.framework.PROFILES``), the same a live control plane can run, plus what the simulated
world reveals to it.

- ``fifo``: submission order, first fit, no reservation (a job that does not fit is passed over).
- ``sjf``: shortest job first with *oracle* runtimes (the world tells each job's true remaining
  run time): a bound on what runtime-aware ordering could achieve, not a deployable policy.
- ``las``: Tiresias-style least attained service with preemption by service level.
- ``drf``: dominant resource fairness across teams' queues (current usage only).
- ``default``: Hyperion's profile: fair share with decayed history, quotas, preemption, EASY backfill.
Any other profile name is accepted too, with its defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperion.core.framework import PROFILES, Profile

ORACLE = {"sjf"}  # policies the world tells true runtimes


@dataclass(frozen=True)
class Policy:
    name: str
    profile: Profile
    oracle: bool = False


class PolicyError(ValueError):
    pass


def policy(name: str, **options: object) -> Policy:
    if name not in PROFILES:
        raise PolicyError(f"unknown policy {name!r}; known: {', '.join(PROFILES)}")
    return Policy(name, PROFILES[name](**options), name in ORACLE)


def policies(names: str) -> list[Policy]:
    """``fifo,las,drf,default`` -> the policies, in that order."""
    out = [policy(n.strip()) for n in names.split(",") if n.strip()]
    if not out:
        raise PolicyError("no policy given; e.g. --policy fifo,sjf,las,drf,default")
    return out
