"""A checkpointed counter: the smallest job that survives preemption with the same answer.

Each step adds step**2 to a running total. The state (step, total) is saved every 10 steps and
whenever the node agent asks (SIGUSR1: save and go on; SIGTERM: save and exit with status 143);
a new attempt resumes from the newest checkpoint, so the final total is the same whether or not the
run was interrupted::

    HYPERION_CHECKPOINT_DIR=/tmp/ckpt python examples/checkpoint/counter.py --steps 100 --sleep 0.1 --out /tmp/counter.json
"""

from __future__ import annotations

import argparse
import json
import time

from hyperion import checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="steps in all (default 100)")
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds per step (default 0.1)")
    parser.add_argument("--out", required=True, help="where to write the result (JSON)")
    parser.add_argument("--every", type=int, default=10, help="checkpoint every N steps (default 10)")
    args = parser.parse_args(argv)

    checkpoint.install()  # from here on SIGTERM is a request to save and exit, not an instant death
    state = checkpoint.load_json() or {"step": 0, "total": 0}
    resumed_from = state["step"] if state["step"] else None
    print(f"attempt {checkpoint.attempt()}, rank {checkpoint.rank()}: "
          + (f"resuming after step {resumed_from}" if resumed_from else "starting from step 0"), flush=True)

    while state["step"] < args.steps:
        time.sleep(args.sleep)
        state["step"] += 1
        state["total"] += state["step"] ** 2
        if checkpoint.maybe_checkpoint(lambda: state, state["step"], every=args.every):  # exits 143 after SIGTERM
            print(f"checkpoint at step {state['step']}", flush=True)

    result = {"steps": args.steps, "total": state["total"], "resumed_from": resumed_from,
              "attempt": checkpoint.attempt()}
    checkpoint.write_atomically(args.out, json.dumps(result) + "\n")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
