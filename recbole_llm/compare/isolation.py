"""Run one function in a fresh (spawned) process and learn how it ended, whatever happened to it.

A training run gets its own process so that its peak memory is its own and a crash (killed, out of
memory, ``os._exit``) takes down that run only. The parent never blocks on the child's queue: it
polls with a timeout while watching ``process.exitcode``, so a child that dies without a word is
reported with its exit code instead of hanging the comparison.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

POLL_S = 0.5  # how often the parent looks at the child while it runs
DRAIN_S = 2.0  # how long to wait for a result that a just-exited child may still be flushing


@dataclass
class ChildOutcome:
    """How an isolated call ended: ``result`` when it returned, else ``exit_code`` and ``error``."""

    ok: bool
    result: Any = None
    exit_code: int | None = 0
    error: str = ""


ORPHAN_POLL_S = 2.0  # how often a child checks that the process that started it is still alive


def _exit_when_orphaned(parent_pid: int) -> None:
    """Stop the child once its parent is gone, so a killed comparison leaves no training running.

    Without it, ``kill`` on a comparison kills the runner only and its child trains on for hours,
    sharing the CPU with the next run. The parent's pid changes (to init or a subreaper) when it dies.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(ORPHAN_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def _child_main(result_queue, function: Callable, args: tuple, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        _exit_when_orphaned(parent_pid)
    try:
        result_queue.put(("ok", function(*args)))
    except BaseException as exc:  # noqa: BLE001  (report any failure to the parent instead of dying silently)
        result_queue.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        sys.exit(1)  # a failed run ends with a non-zero exit code like any failed program


def describe_exit(exit_code: int | None) -> str:
    """``-9`` -> 'killed by signal 9 (SIGKILL)'; ``137`` -> 'exited with code 137'."""
    if exit_code is None:
        return "still running"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-exit_code} ({name})"
    return f"exited with code {exit_code}"


def _wait_for_message(process, result_queue, timeout_s: float | None) -> tuple[str, Any] | None:
    """The child's message, or None when it exited (or ran past ``timeout_s``) without one."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        try:
            return result_queue.get(timeout=POLL_S)
        except queue_module.Empty:
            pass
        if process.exitcode is not None:  # exited: a last message may still be in the pipe
            try:
                return result_queue.get(timeout=DRAIN_S)
            except queue_module.Empty:
                return None
        if deadline is not None and time.monotonic() > deadline:
            process.kill()
            return None


def run_in_child(function: Callable, *args: Any, timeout_s: float | None = None) -> ChildOutcome:
    """Call ``function(*args)`` in a spawned process; never raises for a failure of the child.

    ``function`` and ``args`` must be picklable (a module-level function). A timeout kills the child.
    """
    ctx = mp.get_context("spawn")
    result_queue = ctx.Queue()
    process = ctx.Process(target=_child_main, args=(result_queue, function, args, os.getpid()))
    started = time.monotonic()
    process.start()
    message = _wait_for_message(process, result_queue, timeout_s)
    process.join(timeout=30)
    if process.exitcode is None:  # returned its result but hangs on exit
        process.kill()
        process.join()
    if message is not None and message[0] == "ok":
        return ChildOutcome(ok=True, result=message[1], exit_code=process.exitcode)
    if message is not None:
        return ChildOutcome(ok=False, exit_code=process.exitcode, error=message[1])
    reason = describe_exit(process.exitcode)
    if timeout_s is not None and time.monotonic() - started > timeout_s:
        reason = f"ran past its {timeout_s:g} s limit and was {reason}"
    return ChildOutcome(ok=False, exit_code=process.exitcode, error=f"child process {reason} without a result")
