"""The autoscaler's cloud chores for ``aws`` node pools, beside its loop: interruption events from
an SQS queue, and the orphan sweep.

- *interruptions*: every ``poll_s`` (when a queue URL is configured), ``SqsInterruptions.poll``
  receives a batch; each ``spot-interruption`` (EC2 Spot Instance Interruption Warning) and each
  ``rebalance-recommendation`` (EC2 Instance Rebalance Recommendation) marks the live instance
  whose provider id is the event's instance id (``AutoscalerLoop.notice``: ``notice_at``, a
  versioned write, a ``spot-interruption`` event). The next reconcile drains it: its jobs are
  stopped with their grace period to checkpoint and requeued, a replacement is launched, and once
  no task is left the instance is terminated. Events for instances this control plane does not
  know are ignored. A rebalance recommendation is treated as a warning: draining early costs a
  checkpoint, waiting may cost the work since the last one.
- *orphan sweep*: every ``sweep_s``, for each region of the aws pools' providers,
  ``providers.aws.sweep_orphans`` terminates the instances tagged with this cluster id that no
  instance record knows (by instance id or request id) and that were launched over ``grace_s``
  ago; each sweep that terminated something is an ``orphan-swept`` event.

Errors are collected from the queue (``drain_errors``) and logged; nothing is raised into this
loop or any other (the providers' own errors go to the autoscaler loop, which polls them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hyperion.providers.aws import AwsProvider, sweep_orphans
from hyperion.providers.aws_events import SqsInterruptions
from hyperion.runtime.autoscaler_loop import AutoscalerLoop

log = logging.getLogger("hyperion.autoscaler.cloud")


class CloudChores:
    def __init__(self, autoscaler: AutoscalerLoop, interruptions: SqsInterruptions | None = None,
                 poll_s: float = 2.0, sweep_s: float = 60.0, grace_s: float = 600.0,
                 wall_clock: Callable[[], float] | None = None) -> None:
        self.autoscaler = autoscaler
        self.interruptions = interruptions
        self.poll_s, self.sweep_s, self.grace_s = poll_s, sweep_s, grace_s
        self.now = wall_clock or autoscaler.service.clock.now  # EC2 launch times are wall-clock seconds
        self.swept: list[str] = []  # every instance id the sweep terminated (for tests and status)
        self.events_seen = 0

    async def poll_interruptions(self) -> int:
        """One receive from the queue; returns how many events marked an instance."""
        if self.interruptions is None:
            return 0
        events = await self.interruptions.poll(max_messages=10, wait_s=0)
        for err in self.interruptions.drain_errors():
            log.warning("interruption queue: %s", err.message)
        marked = 0
        for e in events:
            self.events_seen += 1
            i = self.autoscaler.notice(e.time or self.now(), e.kind, f"the SQS queue ({e.action or 'no action'})",
                                       provider_id=e.instance_id)
            if i is None:
                log.info("%s for %s: not an instance of this control plane; ignored", e.kind, e.instance_id)
            else:
                marked += 1
        return marked

    async def sweep(self) -> list[str]:
        """One orphan sweep per region of the aws pools; returns the ids it terminated."""
        pools = self.autoscaler.pools
        providers: dict[tuple, AwsProvider] = {}
        for p in self.autoscaler.providers_named("aws"):
            if isinstance(p, AwsProvider):  # the sweep is aws's own, not a NodeProvider capability
                providers.setdefault((p.region, p.endpoint_url, p.cluster_id), p)
        terminated: list[str] = []
        for p in providers.values():
            known = [i.provider_id for i in pools.instances.values() if i.provider_id]
            requests = [i.request_id for i in pools.instances.values()]
            try:
                swept = await sweep_orphans(p, known, self.grace_s, self.now(), requests)
            except Exception:  # noqa: BLE001 - never raised into the loop
                log.exception("orphan sweep in %s failed", p.region)
                continue
            if swept:
                self.autoscaler.service.events.emit(
                    "orphan-swept", f"aws {p.region}: terminated {len(swept)} instance(s) tagged with cluster "
                                    f"{p.cluster_id} that no instance record knows: {', '.join(swept)}")
                terminated += swept
        self.swept += terminated
        return terminated

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + min(self.sweep_s, 5.0)  # first sweep soon after start (a crash may have left some)
        while True:
            try:
                await self.poll_interruptions()
            except Exception:  # noqa: BLE001
                log.exception("polling the interruption queue failed; retrying")
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + self.sweep_s
                try:
                    await self.sweep()
                except Exception:  # noqa: BLE001
                    log.exception("orphan sweep failed; retrying")
            await asyncio.sleep(min(self.poll_s, self.sweep_s))
