"""The parent's side of the worker processes: start them, talk to them, stop them."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TypeVar

from bench.swarm.config import SwarmError
from bench.swarm.messages import Command, Exit, Failed, Interval, Progress, Report
from bench.swarm.plan import WorkerPlan
from bench.swarm.worker import worker_main

#: Seconds a polling round waits for reports before it looks at the workers' health.
POLL_S = 0.25
#: Seconds the workers get to exit after ``Exit`` before they are terminated.
EXIT_WAIT_S = 10.0

R = TypeVar("R", bound=Report)


@contextlib.contextmanager
def sigint_ignored_by_children() -> Iterator[None]:
    """Processes started meanwhile ignore SIGINT for life (an ignored signal
    stays ignored across exec).  Ctrl-C goes to the terminal's whole process
    group, and it is the parent's to handle: it stops the workers and
    reports what finished; a worker would die of it with a traceback.  The
    parent's own SIGINT is blocked meanwhile, so a Ctrl-C that arrives then
    reaches it afterwards instead of being lost.  (Blocking alone is not
    inherited: a spawned child starts with an empty signal mask.)"""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal dispositions belong to the main thread; nothing to do here
        return
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    old_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if old_handler is None else old_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


@dataclass
class WorkerHandle:
    """One worker process and its pipe."""

    index: int
    proc: BaseProcess
    conn: Connection
    progress: Progress = field(default_factory=Progress)  #: its latest progress report


class WorkerPool:
    """The run's worker processes; ``on_wait`` is told what a long wait is
    for, ``on_interval`` gets every :class:`Interval` as it comes."""

    def __init__(self, on_wait: Callable[[str], None], on_interval: Callable[[Interval], None] | None = None) -> None:
        self.workers: list[WorkerHandle] = []
        self.on_wait = on_wait
        self.on_interval = on_interval

    def spawn(self, plans: list[WorkerPlan]) -> None:
        """One fresh process per plan (``spawn``: no state inherited)."""
        ctx = mp.get_context("spawn")
        for plan in plans:
            parent_end, child_end = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=worker_main, args=(plan, child_end), name=f"swarm-worker-{plan.index}")
            proc.daemon = True
            with sigint_ignored_by_children():
                proc.start()
            child_end.close()
            self.workers.append(WorkerHandle(plan.index, proc, parent_end))

    def broadcast(self, command: Command) -> None:
        """Send one command to every worker."""
        for h in self.workers:
            h.conn.send(command)

    def progress(self) -> list[Progress]:
        """Every worker's latest progress report."""
        return [h.progress for h in self.workers]

    def _receive(self, handle: WorkerHandle) -> Report:
        try:
            msg: Report = handle.conn.recv()
        except (EOFError, OSError) as exc:
            raise SwarmError(f"worker {handle.index} died (exit code {handle.proc.exitcode})") from exc
        if isinstance(msg, Failed):
            raise SwarmError(f"worker {msg.worker} failed:\n{msg.traceback}")
        if isinstance(msg, Progress):
            handle.progress = msg
        elif isinstance(msg, Interval) and self.on_interval is not None:
            self.on_interval(msg)
        return msg

    def poll(self, timeout: float) -> list[tuple[WorkerHandle, Report]]:
        """Reports that arrive within ``timeout`` (progress and intervals are absorbed)."""
        by_conn = {h.conn: h for h in self.workers}
        out: list[tuple[WorkerHandle, Report]] = []
        for c in wait(list(by_conn), timeout):
            handle = by_conn[c]  # type: ignore[index]
            while handle.conn.poll():
                msg = self._receive(handle)
                if not isinstance(msg, Progress | Interval):
                    out.append((handle, msg))
        return out

    def gather(self, kind: type[R], timeout: float, status: str) -> dict[int, R]:
        """Wait for one ``kind`` report from every worker (worker index -> report)."""
        got: dict[int, R] = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(self.workers):
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sorted(set(range(len(self.workers))) - set(got))
                raise SwarmError(
                    f"timed out after {timeout:.0f}s waiting for workers {missing} ({kind.__name__.lower()})"
                )
            for handle, msg in self.poll(min(left, POLL_S)):
                if isinstance(msg, kind):
                    got[handle.index] = msg
            for h in self.workers:
                if not h.proc.is_alive() and h.index not in got and not h.conn.poll():
                    raise SwarmError(f"worker {h.index} exited (code {h.proc.exitcode}) during {kind.__name__.lower()}")
            self.on_wait(status)
        return got

    def shutdown(self) -> None:
        """Ask every worker to exit; terminate the ones that do not."""
        for h in self.workers:
            try:
                h.conn.send(Exit())
            except OSError:
                pass
        deadline = time.monotonic() + EXIT_WAIT_S
        for h in self.workers:
            h.proc.join(max(0.1, deadline - time.monotonic()))
            if h.proc.is_alive():
                h.proc.terminate()
                h.proc.join(5)
            h.conn.close()
