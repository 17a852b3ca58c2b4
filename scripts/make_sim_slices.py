#!/usr/bin/env python3
"""Cut the small, real trace slices the simulator's golden tests replay (``tests/sim_golden/data/``).

Deterministic: the same data dir gives byte-identical slices. Every slice keeps its origin's CSV
header and rows byte for byte, line ends included (the Azure file uses CRLF), only a subset of
the rows, and always ends with a line end (the Azure origin's last line has none); nothing is
edited, resampled or synthesised. The origin of each file,
its licence and how it was cut are in ``tests/sim_golden/data/README.md``.

- Philly (``philly_pollux/philly.csv``, rows in no order): the first ``PHILLY_JOBS`` jobs by
  submission time (``timestamp``, ties by file order), written in the order they appear in the
  file, so the slice stays unsorted as the original is.
- Alibaba GPU v2023: the first ``ALIBABA_PODS`` pods of ``openb_pod_list_sample300.csv`` (file
  order, which is creation order) and the first ``ALIBABA_NODES`` nodes of
  ``openb_node_list_gpu_node.csv``.
- Azure LLM inference 2023: the first ``AZURE_REQUESTS`` requests of
  ``AzureLLMInferenceTrace_conv.csv`` (file order = arrival order).

Usage: ``.venv/bin/python scripts/make_sim_slices.py [--data DIR] [--out DIR]``; ``--data``
defaults to ``$HYPERION_DATA``, else ``../shared/data`` next to the repository. After re-cutting,
regenerate the golden numbers: ``UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/sim_golden``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "tests" / "sim_golden" / "data"
MAX_BYTES = 150_000  # each slice stays small enough to live in the repository

PHILLY_JOBS = 600
ALIBABA_PODS = 150
ALIBABA_NODES = 16
AZURE_REQUESTS = 1000

# (source path under the data dir, slice file name)
PHILLY = ("philly_pollux/philly.csv", "philly_first600.csv")
ALIBABA_PODS_FILE = ("alibaba_gpu_v2023/openb_pod_list_sample300.csv", "openb_pod_list_first150.csv")
ALIBABA_NODES_FILE = ("alibaba_gpu_v2023/openb_node_list_gpu_node.csv", "openb_node_list_gpu_node_first16.csv")
AZURE = ("azure_llm_inference_2023/AzureLLMInferenceTrace_conv.csv", "AzureLLMInferenceTrace_conv_first1000.csv")


def default_data_dir() -> Path:
    env = os.environ.get("HYPERION_DATA")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


def read_lines(path: Path) -> tuple[str, list[str], str]:
    """(header, data lines, line end) of a CSV file: lines without their ends, blank lines
    dropped, and the line end the file uses ("\\r\\n" or "\\n", from its header line). Rows are
    kept as text: a slice must be the origin's bytes, not a re-serialisation."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SystemExit(f"cannot read {path}: {e.strerror or e}; pass --data DIR (the shared data folder)") from None
    text = data.decode("utf-8")
    first = text.split("\n", 1)[0]
    newline = "\r\n" if first.endswith("\r") else "\n"
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    lines = [line for line in lines if line.strip()]
    if len(lines) < 2:
        raise SystemExit(f"{path}: expected a header and data rows")
    return lines[0], lines[1:], newline


def philly_slice(header: str, rows: list[str], n: int) -> list[str]:
    """The ``n`` earliest-submitted rows (``timestamp`` is the first column, ``YYYY-MM-DD HH:MM:SS``,
    so text order is time order; ties by position in the file), in file order."""
    if header.split(",")[0].strip() != "timestamp":
        raise SystemExit(f"philly: expected the first column to be timestamp, got header {header!r}")
    order = sorted(range(len(rows)), key=lambda i: (rows[i].split(",", 1)[0], i))
    keep = sorted(order[:n])
    return [rows[i] for i in keep]


def write(out: Path, name: str, header: str, rows: list[str], newline: str) -> tuple[Path, int, str]:
    path = out / name
    data = "".join(line + newline for line in [header, *rows]).encode("utf-8")
    if len(data) > MAX_BYTES:
        raise SystemExit(f"{name}: {len(data):,} bytes is over the {MAX_BYTES:,} byte limit; cut fewer rows")
    path.write_bytes(data)
    return path, len(data), hashlib.sha256(data).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="the shared data folder [$HYPERION_DATA, else ../shared/data]")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where the slices go [{DEFAULT_OUT.relative_to(REPO)}]")
    args = ap.parse_args(argv)
    data: Path = args.data or default_data_dir()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    written = []
    header, rows, newline = read_lines(data / PHILLY[0])
    written.append((PHILLY[0], write(out, PHILLY[1], header, philly_slice(header, rows, PHILLY_JOBS), newline), len(rows)))
    for (src, name), n in ((ALIBABA_PODS_FILE, ALIBABA_PODS), (ALIBABA_NODES_FILE, ALIBABA_NODES), (AZURE, AZURE_REQUESTS)):
        header, rows, newline = read_lines(data / src)
        written.append((src, write(out, name, header, rows[:n], newline), len(rows)))

    print(f"slices of {data} written to {out}:")
    for src, (path, size, sha), total in written:
        kept = path.read_bytes().count(b"\n") - 1
        print(f"  {path.name}: {kept:,} of {total:,} rows of {src}, {size:,} bytes, sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
