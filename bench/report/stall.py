"""The sweep report's "When a client stops reading" section: what each fan-out
strategy is for.

With every client reading (the sweep's points) ``queued`` and ``direct``
deliver alike, and ``direct`` skips a hand-over between threads.  They
differ when one client stops reading: ``direct`` writes to every client in
the sender's own thread and blocks on the one whose socket is full, so
every later line reaches everybody late; ``queued`` cuts that client off at
its send queue and nobody else notices.  ``python -m bench sweep`` runs
one such point per strategy into ``DIR/stalled/<strategy>/``
(:data:`STALL_DIR`); this module turns those runs into the section, its
verdict computed from them, never assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.report import doc
from bench.report.fmt import ms, ratio_pct
from bench.results.schema import RunDocument

#: The subdirectory of a sweep's results that holds the stalled-reader points.
STALL_DIR = "stalled"
#: What the server logs when it cuts a slow reader off (server.fanout).
CUT_OFF_MARK = "send queue exceeded"
#: ``direct`` counts as stalled by the client that stopped reading when its
#: median is at least this many times ``queued``'s and above
#: :data:`STALLED_P50_US`.  The median, not the p99: a stall delays every line
#: that follows it, so it moves the middle of the distribution, while a
#: busy harness on a shared machine (CI under parallel tests) moves only the
#: tail -- there ``queued``'s p99 reached 412 ms beside ``direct``'s 788 ms,
#: but the medians were 20 ms and 374 ms.
STALL_FACTOR = 3.0
STALLED_P50_US = 100_000

HEADER = (
    *("strategy", "p50 ms", "p99 ms", "max ms"),
    *("delivered to the others", "the client that stopped reading", "data"),
)


@dataclass(frozen=True)
class StallRun:
    """One strategy's stalled-reader run and its JSON file (relative to the report)."""

    strategy: str
    run: RunDocument
    file: str

    @property
    def p50_us(self) -> int:
        return int(self.run["latency_us"]["p50_us"] or 0)

    @property
    def p99_us(self) -> int:
        return int(self.run["latency_us"]["p99_us"] or 0)

    @property
    def cut_off(self) -> bool:
        """The server disconnected the client that stopped reading."""
        return any(CUT_OFF_MARK in line for line in self.run["target"].get("stderr_tail") or [])


def _fate(r: StallRun) -> str:
    if r.cut_off:
        queue = (r.run["target"].get("effective_options") or {}).get("send_queue_bytes")
        at = f" at its {int(queue) // 1024} KiB send queue" if queue and queue.isdigit() else ""
        return f"cut off by the server{at} ({CUT_OFF_MARK})"
    return "kept: the server waited on it"


def _workload(r: StallRun) -> str:
    p = r.run["parameters"]
    return (
        f"{p['clients']} clients, {p['rate']:,.0f} msg/s of {p['payload_bytes']:,} B from {p['senders']} senders "
        f"for {p['duration_s']:g} s, and one more client that registers and then never reads"
    )


def verdict(runs: Sequence[StallRun]) -> str | None:
    """What the runs show about ``queued`` and ``direct``, in one sentence or two."""
    by = {r.strategy: r for r in runs}
    queued, direct = by.get("queued"), by.get("direct")
    if queued is None or direct is None:
        return None
    q, d = queued.p50_us, direct.p50_us
    if d >= STALL_FACTOR * max(q, 1) and d >= STALLED_P50_US:
        cut = "cut the stalled client off and the others did not notice" if queued.cut_off else "kept up"
        return (
            f"**One client that stops reading stalls everyone under `direct`**: its median was {ms(d)} ms against "
            f"{ms(q)} ms for `queued` ({d / max(q, 1):,.0f}x; p99 {ms(direct.p99_us)} ms against "
            f"{ms(queued.p99_us)} ms). `direct` writes to each client in the sender's own "
            f"thread and blocked on the full socket, so every later line reached everybody late; `queued` {cut}. "
            "That is what `queued` (the server's default) is for; with every client reading, as in the sweep's "
            "points, the two are alike."
        )
    return (
        f"Here the two were alike (median `direct` {ms(d)} ms, `queued` {ms(q)} ms): the stalled client's kernel "
        "buffers took what it was sent within this run, so `direct` never blocked on it; a longer --duration "
        "shows the difference."
    )


def blocks(runs: Sequence[StallRun]) -> list[doc.Block]:
    """The section: what the strategies are, the runs' table, the verdict."""
    if not runs:
        return []
    out: list[doc.Block] = [
        doc.Heading(2, "When a client stops reading"),
        doc.Para(
            "What the fan-out strategies are for. `queued` hands each broadcast to a flusher thread that writes "
            "to every client without blocking and disconnects a client whose queue passes --send-queue-bytes; "
            "`direct` (the original design, kept as a reference) writes to each client in the sender's thread, "
            "blocking while a client's socket is full. With every client reading, as in the sweep's points, "
            f"they deliver alike. This point differs: {_workload(runs[0])}. Latency is that of the clients that "
            "read."
        ),
    ]
    rows: list[list[doc.Cell]] = []
    for r in runs:
        lat, d = r.run["latency_us"], r.run["deliveries"]
        delivered = f"{d['delivered']:,} / {d['expected']:,} ({ratio_pct(d.get('delivered_ratio'))})"
        numbers = [ms(lat["p50_us"]), ms(lat["p99_us"]), ms(lat["max_us"])]
        rows.append([r.strategy, *numbers, delivered, _fate(r), doc.Link("json", r.file)])
    out.append(doc.Table(HEADER, rows, "lrrrrll"))
    said = verdict(runs)
    if said is not None:
        out.append(doc.Para(said))
    return out
