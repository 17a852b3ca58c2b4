"""Job logs kept by the control plane.

Agents ship log bytes with their offset; the control plane writes them at that offset, so a chunk
delivered twice (after a reconnect) changes nothing. One file per job, rank and attempt:
``<logs>/<job id>/<rank>.<attempt>.log``; reading a rank concatenates its attempts.
"""

from __future__ import annotations

import os
from pathlib import Path


class LogStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str, attempt: int, rank: int) -> Path:
        return self.root / job_id / f"{rank}.{attempt}.log"

    def write(self, job_id: str, attempt: int, rank: int, offset: int, data: bytes) -> None:
        path = self.path(job_id, attempt, rank)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o640)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o640)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def size(self, job_id: str, attempt: int, rank: int) -> int:
        try:
            return self.path(job_id, attempt, rank).stat().st_size
        except FileNotFoundError:
            return 0

    def attempts(self, job_id: str, rank: int) -> list[Path]:
        d = self.root / job_id
        if not d.is_dir():
            return []
        found = []
        for p in d.glob(f"{rank}.*.log"):
            try:
                found.append((int(p.name.split(".")[1]), p))
            except (IndexError, ValueError):
                continue
        return [p for _, p in sorted(found)]

    def read(self, job_id: str, rank: int, offset: int = 0) -> bytes:
        """All attempts of a rank concatenated, from byte ``offset`` of that concatenation; files
        wholly before ``offset`` are skipped, not read (``logs -f`` polls with a growing offset)."""
        out = []
        for path in self.attempts(job_id, rank):
            size = path.stat().st_size
            if offset >= size:
                offset -= size
                continue
            with open(path, "rb") as f:
                f.seek(offset)
                out.append(f.read())
            offset = 0
        return b"".join(out)
