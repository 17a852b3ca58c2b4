"""The checkpoint SDK for user jobs: save and resume through the node agent's checkpoint protocol.

A job imports only this module (stdlib only; PyTorch is imported by the torch helpers when called)::

    from hyperion import checkpoint

    checkpoint.install()                              # SIGTERM / SIGUSR1 -> checkpoint requests
    state = checkpoint.load_json() or {"step": 0, "total": 0}     # None: nothing to resume from
    while state["step"] < 1000:
        state["step"] += 1
        state["total"] += state["step"] ** 2
        checkpoint.maybe_checkpoint(lambda: state, state["step"], every=100)  # exits 143 after SIGTERM

Also ``save_bytes`` / ``load_bytes``, ``save_torch`` / ``load_torch``, ``requested()`` and
``stopping()`` for loops of one's own, and ``latest()``, the file to resume from.

The protocol, as the node agent (``hyperiond``) drives it:

- environment: ``HYPERION_CHECKPOINT_DIR`` (a directory shared by every attempt of the job; set it
  with ``checkpoint_dir`` in the job document), ``HYPERION_RESUME_FROM`` (optional: the job's
  latest reported checkpoint), ``HYPERION_JOB_ID``, ``HYPERION_ATTEMPT`` (1, 2, ...),
  ``HYPERION_RANK``, ``HYPERION_WORLD_SIZE`` and ``HYPERION_AGENT_SOCKET`` (optional: the agent's
  unix datagram socket).
- signals: SIGTERM means "checkpoint now, then exit" (preemption, shutdown; the agent sends SIGKILL
  once the job's ``grace_period`` is over); SIGUSR1 means "checkpoint now and go on". The agent may
  also freeze and thaw the process (SIGSTOP / SIGCONT): nothing to do here.
- files: ``<dir>/rank-<R>/ckpt-a<attempt:06d>-s<step:012d>.ckpt``. A save writes ``.tmp-*`` in the
  same directory, fsyncs it, renames it into place and fsyncs the directory, so a reader never sees
  half a checkpoint; then only the rank's newest ``KEEP`` files are kept.
- report: after each save one datagram to the agent, JSON ``{"kind": "checkpoint", "job_id",
  "attempt", "rank", "at", "path", "step"}``; fire and forget, never an error in user code.

Glossary:
- *order*: checkpoints are ordered by (attempt, step). A process of an older attempt that is still
  alive somewhere (an orphan) therefore never outranks a newer attempt, and files of attempts newer
  than this process's are never resumed from.
- *step*: the caller's step number, or when none is given one more than the newest of this rank and
  attempt.
- *requested*: a checkpoint was asked for (a signal) and not yet saved; *stopping*: SIGTERM was seen.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

TYPE_CHECKING = False  # `typing` is for annotations only: not imported at run time (import cost)
if TYPE_CHECKING:
    from typing import Any, BinaryIO, NoReturn

__all__ = [
    "KEEP", "PREEMPTED_EXIT_CODE", "CheckpointError", "attempt", "checkpoint_dir", "exit_preempted", "install",
    "latest", "load_bytes", "load_json", "load_torch", "maybe_checkpoint", "rank", "requested", "save_bytes",
    "save_json", "save_torch", "stopping", "write_atomically",
]

KEEP = 2  # checkpoints kept per rank
PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM  # 143: stopped by request; never mistaken for a success
STALE_TEMP_S = 3600.0  # a temp file untouched this long belongs to a writer that died
_NAME = re.compile(r"ckpt-a(\d{6,})-s(\d{12,})\.ckpt")


class CheckpointError(RuntimeError):
    """A checkpoint could not be saved or loaded; the message says what to change."""


class _State:
    def __init__(self) -> None:
        self.installed = False
        self.on_request: Callable[[str], None] | None = None
        self.requested = False
        self.stopping = False
        self.last_step = 0  # the last step this process saved under
        self.warned: set[str] = set()


_state = _State()


# ---- environment ----------------------------------------------------------------------------
def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise CheckpointError(f"{name} must be a whole number; got {raw!r}") from None


def checkpoint_dir() -> Path | None:
    """``HYPERION_CHECKPOINT_DIR`` as an absolute path, or None when it is not set."""
    raw = os.environ.get("HYPERION_CHECKPOINT_DIR", "").strip()
    return Path(os.path.abspath(raw)) if raw else None


def rank() -> int:
    """This process's rank (``HYPERION_RANK``, 0 when not set)."""
    return _int_env("HYPERION_RANK", 0)


def attempt() -> int:
    """This process's attempt (``HYPERION_ATTEMPT``, 1 when not set)."""
    return _int_env("HYPERION_ATTEMPT", 1)


def _warn_once(key: str, message: str) -> None:
    if key not in _state.warned:
        _state.warned.add(key)
        try:
            print(f"hyperion.checkpoint: {message}", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass


# ---- finding checkpoints --------------------------------------------------------------------
def _order(path: Path) -> tuple[int, int] | None:
    """(attempt, step) of a checkpoint file name, or None for any other name (temp files too)."""
    m = _NAME.fullmatch(path.name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _checkpoints(directory: Path) -> list[tuple[tuple[int, int], Path]]:
    """The checkpoint files in ``directory``, oldest first."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = [(key, directory / n) for n in names if (key := _order(Path(n))) is not None]
    return sorted((k, p) for k, p in found if p.is_file())


def latest() -> Path | None:
    """The checkpoint this rank resumes from: the newest, by (attempt, step), of
    ``HYPERION_RESUME_FROM`` (when it is an existing checkpoint file of a ``rank-<this rank>``
    directory) and the files of this rank in the checkpoint directory, leaving out attempts newer
    than this process's; None when there is none."""
    me, now = f"rank-{rank()}", attempt()
    candidates: list[tuple[tuple[int, int], Path]] = []
    resume = os.environ.get("HYPERION_RESUME_FROM", "").strip()
    if resume:
        path = Path(os.path.abspath(resume))
        key = _order(path)
        if key is not None and path.parent.name == me and path.is_file():
            candidates.append((key, path))
    base = checkpoint_dir()
    if base is not None:
        candidates += _checkpoints(base / me)
    usable = [(key, path) for key, path in candidates if key[0] <= now]
    return max(usable)[1] if usable else None


# ---- signals --------------------------------------------------------------------------------
def _on_signal(signum: int, frame: object) -> None:
    what = "terminate" if signum == signal.SIGTERM else "checkpoint"
    _state.requested = True
    if what == "terminate":
        _state.stopping = True
    if _state.on_request is not None:
        _state.on_request(what)


def install(on_request: Callable[[str], None] | None = None) -> None:
    """Handle SIGTERM (checkpoint, then exit) and SIGUSR1 (checkpoint, go on) by setting flags the
    loop reads with ``requested()`` / ``stopping()``; ``on_request("terminate" | "checkpoint")`` is
    called from the handler (keep it short: no saving there). Idempotent; call it from the main
    thread. After it, SIGTERM no longer ends the process by itself: the loop must check."""
    if on_request is not None:
        _state.on_request = on_request
    if not _state.installed:
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGUSR1, _on_signal)
        _state.installed = True


def requested() -> bool:
    """A checkpoint was asked for (SIGTERM or SIGUSR1) and not yet saved."""
    return _state.requested


def stopping() -> bool:
    """SIGTERM was seen: save, then ``exit_preempted()``."""
    return _state.stopping


def exit_preempted() -> NoReturn:
    """Flush stdout and stderr and exit with status 143 (128 + SIGTERM), so that a job stopped by
    preemption or an agent shutdown is never taken for a success. Raises ``SystemExit``: ``finally``
    blocks and atexit handlers run."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    raise SystemExit(PREEMPTED_EXIT_CODE)


# ---- saving ---------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot sync a directory
    finally:
        os.close(fd)


def _clean(directory: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints and temp files of writers that died."""
    for _, path in _checkpoints(directory)[:-keep]:
        _unlink(path)
    try:
        temps = [directory / n for n in os.listdir(directory) if n.startswith(".tmp-")]
    except OSError:
        return
    for path in temps:
        try:
            if time.time() - path.stat().st_mtime > STALE_TEMP_S:
                _unlink(path)
        except OSError:
            pass


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _replace(final: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``final`` through a temp file beside it: written, fsynced, then renamed over it."""
    temp = final.parent / f".tmp-{final.name}-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, final)
    except BaseException:
        _unlink(temp)
        raise


def write_atomically(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write a file (a job's final result, say) so that a reader sees the old content or the new,
    never half of it: temp file, fsync, rename, fsync of the directory."""
    final = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    _replace(final, lambda f: f.write(raw))
    _fsync_dir(final.parent)
    return final


def _save(write: Callable[[BinaryIO], None], step: int | None) -> Path:
    base = checkpoint_dir()
    if base is None:
        raise CheckpointError("HYPERION_CHECKPOINT_DIR is not set, so there is nowhere to save a checkpoint: "
                              "set `checkpoint_dir` in the job document, or export HYPERION_CHECKPOINT_DIR "
                              "when running by hand")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
        raise ValueError(f"step must be a whole number >= 0; got {step!r}")
    me, now = rank(), attempt()
    directory = base / f"rank-{me}"
    was_requested, _state.requested = _state.requested, False  # a request arriving mid-save stays set
    try:
        created = not directory.is_dir()
        directory.mkdir(parents=True, exist_ok=True)
        if created:
            _fsync_dir(directory.parent)
        if step is None:
            mine = [key[1] for key, _ in _checkpoints(directory) if key[0] == now]
            step = max([_state.last_step, *mine]) + 1
        final = directory / f"ckpt-a{now:06d}-s{step:012d}.ckpt"
        _replace(final, write)
        _fsync_dir(directory)
    except OSError as exc:
        _state.requested = _state.requested or was_requested
        raise CheckpointError(f"cannot save a checkpoint in {directory}: {exc}") from exc
    except BaseException:
        _state.requested = _state.requested or was_requested
        raise
    _state.last_step = step
    _clean(directory, KEEP)
    if final.exists():
        _report(final, step, me, now)
    else:  # pruned at once: a newer attempt has written here
        _warn_once("stale", f"attempt {now} saved {final.name}, but newer checkpoints exist in {directory}; "
                            "this process looks like a leftover of an earlier attempt")
    return final


def _report(path: Path, step: int, me: int, now: int) -> None:
    """One datagram to the node agent; never raises, warns on stderr at most once."""
    address = os.environ.get("HYPERION_AGENT_SOCKET", "").strip()
    if not address:
        return
    message = {"kind": "checkpoint", "job_id": os.environ.get("HYPERION_JOB_ID", ""), "attempt": now, "rank": me,
               "at": time.time(), "path": str(path), "step": step}
    try:
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(json.dumps(message).encode(), address)
    except OSError as exc:
        _warn_once("report", f"cannot report checkpoints to the node agent at {address}: {exc} "
                             "(checkpoints are still saved)")


def save_bytes(data: bytes, step: int | None = None) -> Path:
    """Save ``data`` as this rank's newest checkpoint (atomically); returns its path."""
    return _save(lambda f: f.write(data), step)


def save_json(obj: Any, step: int | None = None) -> Path:
    """Save ``obj`` as JSON; see ``save_bytes``."""
    return save_bytes(json.dumps(obj).encode(), step)


def save_torch(state: dict, step: int | None = None) -> Path:
    """Save ``state`` (a state dict) with ``torch.save``, straight to the temp file."""
    torch = _torch("save_torch")
    return _save(lambda f: torch.save(state, f), step)


# ---- loading --------------------------------------------------------------------------------
def _reads() -> Iterator[Path]:
    """``latest()`` again while the file found vanishes under us (pruned by another writer)."""
    for _ in range(3):
        path = latest()
        if path is None:
            return
        yield path


def load_bytes() -> bytes | None:
    """The contents of ``latest()``, or None when there is no checkpoint to resume from."""
    for path in _reads():
        try:
            return path.read_bytes()
        except FileNotFoundError:
            continue
    return None


def load_json() -> Any | None:
    """The JSON value of ``latest()``, or None when there is no checkpoint to resume from."""
    data = load_bytes()
    return None if data is None else json.loads(data)


def load_torch(map_location: Any = "cpu", **kwargs: Any) -> Any | None:
    """``torch.load`` of ``latest()`` (extra keyword arguments go to it), or None."""
    torch = _torch("load_torch")
    for path in _reads():
        try:
            return torch.load(path, map_location=map_location, **kwargs)
        except FileNotFoundError:
            continue
    return None


def _torch(caller: str) -> Any:
    try:
        import torch
    except ImportError:
        raise CheckpointError(f"{caller} needs PyTorch, which is not installed here: install torch in the job's "
                              "environment, or use save_bytes/save_json") from None
    return torch


# ---- convenience ----------------------------------------------------------------------------
def maybe_checkpoint(state_fn: Callable[[], object], step: int, every: int | None = None) -> bool:
    """Save ``save_json(state_fn(), step)`` when a checkpoint is requested or ``step`` is a multiple
    of ``every``; after SIGTERM, exit with ``exit_preempted()`` once saved. Installs the signal
    handlers on first use (call ``install()`` at start-up to be covered from the first step).
    Returns whether it saved."""
    install()
    saved = False
    if _state.requested or (every and step % every == 0):
        save_json(state_fn(), step)
        saved = True
    if _state.stopping:
        exit_preempted()
    return saved
