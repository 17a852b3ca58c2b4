"""Linear regression by plain-Python SGD that ends with the same weights whether or not it was
preempted and resumed.

The dataset comes from a fixed seed and the minibatch of step k is a function of k alone (a
per-epoch permutation seeded by the epoch number), so the checkpoint holds only the step and the
weights: no random state. JSON keeps floats exactly (``repr`` round-trips), so a resumed run
repeats the uninterrupted one bit for bit::

    HYPERION_CHECKPOINT_DIR=/tmp/ckpt python examples/checkpoint/regression.py --steps 500 --sleep 0.05 --out /tmp/reg.json
"""

from __future__ import annotations

import argparse
import json
import random
import time

from hyperion import checkpoint

SEED = 1234
POINTS, FEATURES, BATCH, LEARNING_RATE = 256, 4, 16, 0.05


def dataset() -> list[tuple[list[float], float]]:
    rng = random.Random(SEED)
    true_w = [rng.uniform(-2, 2) for _ in range(FEATURES)]
    true_b = rng.uniform(-1, 1)
    data = []
    for _ in range(POINTS):
        x = [rng.gauss(0, 1) for _ in range(FEATURES)]
        data.append((x, sum(wi * xi for wi, xi in zip(true_w, x, strict=True)) + true_b + rng.gauss(0, 0.1)))
    return data


def batch(step: int) -> list[int]:
    """The indices of step ``step``'s minibatch (0-based): a function of the step only."""
    per_epoch = POINTS // BATCH
    epoch, k = divmod(step, per_epoch)
    order = random.Random(SEED * 1_000_003 + epoch).sample(range(POINTS), POINTS)
    return order[k * BATCH:(k + 1) * BATCH]


def predict(w: list[float], b: float, x: list[float]) -> float:
    return sum(wi * xi for wi, xi in zip(w, x, strict=True)) + b


def sgd_step(w: list[float], b: float, rows: list[tuple[list[float], float]]) -> tuple[list[float], float]:
    grad_w, grad_b = [0.0] * len(w), 0.0
    for x, y in rows:
        err = predict(w, b, x) - y
        grad_w = [g + 2 * err * xi / len(rows) for g, xi in zip(grad_w, x, strict=True)]
        grad_b += 2 * err / len(rows)
    return [wi - LEARNING_RATE * g for wi, g in zip(w, grad_w, strict=True)], b - LEARNING_RATE * grad_b


def mse(w: list[float], b: float, data: list[tuple[list[float], float]]) -> float:
    return sum((predict(w, b, x) - y) ** 2 for x, y in data) / len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="SGD steps in all (default 500)")
    parser.add_argument("--sleep", type=float, default=0.05, help="extra seconds per step (default 0.05)")
    parser.add_argument("--out", required=True, help="where to write the result (JSON)")
    parser.add_argument("--every", type=int, default=10, help="checkpoint every N steps (default 10)")
    args = parser.parse_args(argv)

    checkpoint.install()
    data = dataset()
    state = checkpoint.load_json() or {"step": 0, "w": [0.0] * FEATURES, "b": 0.0}
    resumed_from = state["step"] or None
    print(f"attempt {checkpoint.attempt()}, rank {checkpoint.rank()}: "
          + (f"resuming after step {resumed_from}" if resumed_from else "starting from step 0"), flush=True)

    while state["step"] < args.steps:
        time.sleep(args.sleep)
        state["w"], state["b"] = sgd_step(state["w"], state["b"], [data[i] for i in batch(state["step"])])
        state["step"] += 1
        if checkpoint.maybe_checkpoint(lambda: state, state["step"], every=args.every):  # exits 143 after SIGTERM
            print(f"checkpoint at step {state['step']}: loss {mse(state['w'], state['b'], data):.6f}", flush=True)

    result = {"loss": mse(state["w"], state["b"], data), "w": state["w"], "b": state["b"], "steps": args.steps,
              "resumed_from": resumed_from, "attempt": checkpoint.attempt()}
    checkpoint.write_atomically(args.out, json.dumps(result) + "\n")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
