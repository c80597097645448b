"""Resource sampling with psutil: the server under test and the harness itself.

A background thread samples every watched process (CPU %, RSS, threads) at a
fixed interval.  Besides the time series, the sampler takes exact CPU-time
snapshots at the start and end of the *active window* (traffic and drain),
so the window's average CPU is computed from ``cpu_times`` deltas rather than
from noisy point samples, and, from ``/proc/PID/task/*/schedstat``, the time
spent runnable but waiting for a CPU and the times a thread was put on a CPU
(its context switches).  Those per-thread files are read only at the
window's two edges: read every interval, a server's 1,000 threads took the
harness's CPU for milliseconds each time.  A harness worker that was running or
waiting to run for at least :data:`SATURATION_CPU_PERCENT` of the window flags
the run as *load generator saturated*: busy, or starved by other load on the
machine, it cannot read its sockets promptly, and the numbers then describe
the harness as much as the server.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import dataclass, field

import psutil

from bench.measure.summaries import ProcessResources, ProcessSummary, Resources

#: A single-threaded worker above this average CPU % over the active window
#: cannot be trusted to read its sockets promptly.
SATURATION_CPU_PERCENT = 90.0

#: Default seconds between samples.
DEFAULT_INTERVAL_S = 0.5


@dataclass
class _Watched:
    label: str
    role: str  # "server" or "worker"
    proc: psutil.Process
    t_s: list[float] = field(default_factory=list)
    cpu_percent: list[float] = field(default_factory=list)
    rss_bytes: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    window_start_cpu: float | None = None
    window_end_cpu: float | None = None
    window_start_wait: float | None = None
    window_end_wait: float | None = None
    window_start_switches: int | None = None
    window_end_switches: int | None = None
    gone: bool = False


def _cpu_seconds(proc: psutil.Process) -> float:
    """The process's CPU time, every thread's (those that ended too): its CPU
    clock to the nanosecond where the kernel lets us read it, else psutil's
    clock ticks (10 ms: +-3% of a 6 s window at 6% of a core)."""
    try:
        return time.clock_gettime_ns(_process_cpu_clock(proc.pid)) / 1e9
    except (OSError, OverflowError):
        t = proc.cpu_times()
        return float(t.user + t.system)


def _process_cpu_clock(pid: int) -> int:
    """What ``clock_getcpuclockid(pid)`` returns on Linux (Python has no
    wrapper): ``MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)``, the process's
    summed on-CPU time; any process's may be read."""
    return ((~pid) << 3) | 2


def _schedstat(pid: int) -> tuple[float | None, int | None]:
    """Summed over the process's threads (``/proc/PID/task/*/schedstat``,
    Linux): seconds runnable but waiting for a CPU, and timeslices (each
    time a thread was put on a CPU: its context switches in); Nones where
    unavailable."""
    wait = switches = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None, None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                _, waited, slices = f.read().split()[:3]
            wait += int(waited)
            switches += int(slices)
        except (OSError, ValueError):
            continue  # a thread that just ended
    return wait / 1e9, switches


class ResourceSampler:
    """Samples processes in a background thread; see the module docstring."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._watched: list[_Watched] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self._window: tuple[float, float | None] | None = None
        self._lock = threading.Lock()

    def watch(self, label: str, pid: int, role: str) -> bool:
        """Add a process; False if it does not exist (nothing is sampled then)."""
        try:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)  # prime: the first reading is always 0
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False
        with self._lock:
            self._watched.append(_Watched(label, role, proc))
        return True

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def window_start(self) -> None:
        """Mark the start of the active window (also takes a sample)."""
        self.sample_once()
        self._window = (time.monotonic(), None)
        with self._lock:
            for w in self._watched:
                try:
                    w.window_start_cpu = _cpu_seconds(w.proc)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    w.gone = True
                w.window_start_wait, w.window_start_switches = _schedstat(w.proc.pid)

    def window_end(self) -> None:
        """Mark the end of the active window (also takes a sample)."""
        if self._window is None:
            return
        self._window = (self._window[0], time.monotonic())
        self.sample_once()
        with self._lock:
            for w in self._watched:
                try:
                    w.window_end_cpu = _cpu_seconds(w.proc)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    w.gone = True
                w.window_end_wait, w.window_end_switches = _schedstat(w.proc.pid)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample_once()

    def sample_once(self) -> None:
        now = round(time.monotonic() - self._t0, 3)
        with self._lock:
            for w in self._watched:
                if w.gone:
                    continue
                try:
                    with w.proc.oneshot():
                        cpu = w.proc.cpu_percent(None)
                        rss = w.proc.memory_info().rss
                        threads = w.proc.num_threads()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    w.gone = True
                    continue
                w.t_s.append(now)
                w.cpu_percent.append(round(cpu, 1))
                w.rss_bytes.append(int(rss))
                w.threads.append(int(threads))

    def between(self, role: str, lo_s: float, hi_s: float) -> tuple[float | None, int | None]:
        """The samples of ``role``'s processes taken in ``[lo_s, hi_s)``
        (``time.monotonic()`` seconds): their CPU % (each process's mean,
        summed over the processes) and the largest RSS; None without a sample."""
        lo, hi = lo_s - self._t0, hi_s - self._t0
        cpu: float | None = None
        rss: int | None = None
        with self._lock:
            for w in self._watched:
                if w.role != role:
                    continue
                first, stop = bisect.bisect_left(w.t_s, lo), bisect.bisect_left(w.t_s, hi)  # t_s grows
                if first >= stop:
                    continue
                cpu = (cpu or 0.0) + sum(w.cpu_percent[first:stop]) / (stop - first)
                rss = max(rss or 0, max(w.rss_bytes[first:stop]))
        return (round(cpu, 1) if cpu is not None else None), rss

    # -- results -----------------------------------------------------------------

    def _window_percent(self, start: float | None, end: float | None) -> float | None:
        if self._window is None or self._window[1] is None or start is None or end is None:
            return None
        wall = self._window[1] - self._window[0]
        if wall <= 0:
            return None
        return round(100.0 * (end - start) / wall, 1)

    def _describe(self, w: _Watched) -> ProcessResources:
        return {
            "label": w.label,
            "pid": w.proc.pid,
            "samples": {"t_s": w.t_s, "cpu_percent": w.cpu_percent, "rss_bytes": w.rss_bytes, "threads": w.threads},
            "summary": {
                "cpu_percent_window": self._window_percent(w.window_start_cpu, w.window_end_cpu),
                "cpu_seconds_window": _seconds(w.window_start_cpu, w.window_end_cpu),
                "runqueue_wait_percent_window": self._window_percent(w.window_start_wait, w.window_end_wait),
                "switches_window": _difference(w.window_start_switches, w.window_end_switches),
                "cpu_percent_max": max(w.cpu_percent, default=None),
                "rss_max_bytes": max(w.rss_bytes, default=None),
                "threads_max": max(w.threads, default=None),
            },
        }

    def result(self) -> Resources:
        """``server`` (or None), ``workers`` (list), window length, saturation."""
        with self._lock:
            servers = [self._describe(w) for w in self._watched if w.role == "server"]
            workers = [self._describe(w) for w in self._watched if w.role == "worker"]
        saturated = [w["label"] for w in workers if _demand(w["summary"]) >= SATURATION_CPU_PERCENT]
        window_s: float | None = None
        window_t_s: list[float] | None = None
        if self._window is not None and self._window[1] is not None:
            window_s = round(self._window[1] - self._window[0], 3)
            window_t_s = [round(self._window[0] - self._t0, 3), round(self._window[1] - self._t0, 3)]
        harness_cpu = [w["summary"].get("cpu_percent_window") for w in workers]
        return {
            "interval_s": self.interval_s,
            "window_s": window_s,
            "window_t_s": window_t_s,
            "server": servers[0] if servers else None,
            "workers": workers,
            "harness_cpu_percent_window": round(sum(c for c in harness_cpu if c is not None), 1) if workers else None,
            "saturation_threshold_percent": SATURATION_CPU_PERCENT,
            "saturated_workers": saturated,
        }


def _seconds(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 6)


def _difference(start: int | None, end: int | None) -> int | None:
    return None if start is None or end is None else end - start


def _demand(summary: ProcessSummary) -> float:
    """Percent of the window a worker was running or waiting to run: a worker
    starved of CPU by other load is as unable to keep up as a busy one."""
    return float(summary.get("cpu_percent_window") or 0.0) + float(summary.get("runqueue_wait_percent_window") or 0.0)
