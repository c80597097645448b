"""The receive path's accounting, without sockets or protocols.

A protocol adapter turns what a connection received into deliveries
(:meth:`bench.wire.Adapter.deliveries`): a block of **probe lines**
(``NAME: PROBE``, :mod:`bench.measure.probeline`) where its framing
carries them so, or ``(name, text)`` **pairs** straight from its framing
otherwise.  :class:`DeliveryRecorder` takes either, for one receiver at a
time, and does the rest: checks every probe (format, checksum, the name it
arrived under against the sender its ``SENDER`` field names), accounts it
in the receiver's :class:`IntegrityTracker` (lost, duplicated, reordered,
corrupted, per stream), and adds ``now - intended`` (microseconds) to the
histogram of the delivery's label (:mod:`bench.measure.labelled`) when the
message was intended at or after ``measure_start_ns``.

The swarm worker (:mod:`bench.swarm.receiver`), the gate, the one-broadcast
and cluster-paths studies and the Locust users all record through it;
:mod:`bench.studies.replay` runs it over a generated stream to measure the
harness's own cost (``python -m bench replay``).

Three layers for probe lines, each exact -- the same counters, integrity
state and histograms as the reference (:meth:`DeliveryRecorder.feed_reference`,
kept for the tests to compare against):

* **block path** (:meth:`DeliveryRecorder.record_lines`, blocks of at least
  :data:`BLOCK_MIN_BYTES`): the whole block laid out with numpy
  (:func:`bench.measure.probeline.line_layout`), every probe's fields parsed
  and every text checked (:func:`bench.measure.probe.parse_probe_block`:
  *one* ``zlib.crc32`` call for the whole block), names compared with the
  senders' as 8-byte words, integrity checked per stream
  (:meth:`IntegrityTracker.observe_block`) and latencies added in one step.
  It only accepts a block in which *every* line is an intact, in-format
  probe from a known sender; anything else (a notice, a corrupted or
  foreign line) sends the block down the per-line path.  The one exception
  to exactness is inherited from the CRC: damage on two or more lines of
  one block that cancels out in its CRC (odds 2**-32, those of a damaged
  line passing its own check) would go unseen.
* **per-line path**: per line one split, one CRC call and a few lookups
  accept an intact probe from a known sender; every other line goes through
  the reference code.  Latencies are recorded in batches.
* **reference**: :func:`bench.measure.probeline.split_line`,
  :func:`probe.parse_probe`, per line.

Pairs take the per-pair equivalent of the per-line path
(:meth:`DeliveryRecorder.record_pairs`).

With a time axis (:meth:`DeliveryRecorder.start_intervals`) every call checks
once whether its arrival time lies in the current interval and switches the
labels' histograms when it does not (:mod:`bench.measure.intervals`): the
loops above are unchanged.

Senders are known in advance (the plan's) or, where they come and go during
the run (the Locust users), learned as they appear: a ``resolve`` function
gives the name a sender id's messages must arrive under (or None: not a
sender), and the first probe of a sender the recorder does not know yet asks
it (:meth:`Accounting.add_sender`); its later probes take the fast paths.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from bench.measure import probe, probeline
from bench.measure.integrity import DUPLICATE, IntegrityTracker
from bench.measure.intervals import ClosedInterval, IntervalAxis
from bench.measure.labelled import Labelled
from bench.measure.stats import LatencyHistogram

#: Blocks at least this long take the vectorised block path; below it the
#: fixed cost of its ~70 numpy calls (~100-200 us on a 2-core CI-class
#: machine) outweighs the per-line saving: about 150 probe lines of 64-byte
#: payload (measured with ``python -m bench replay``, see reports/perf-harness.md).
BLOCK_MIN_BYTES = 16384

_TAG_BYTES = probe.TAG.encode("ascii")
_TEXT_CRC = probe.TEXT_CRC

#: The per-line path's latencies go into the histograms in batches of this many.
_PENDING_MAX = 4096

#: Above every intended time: with labels, the per-line path's plain
#: ``intended >= measure_start`` test is given this, so it never passes.
_NEVER = float("inf")

#: Bounds of the one interval of a recorder without a time axis: every time is in it.
_ALWAYS = (-(1 << 63), 1 << 63)

#: A received pair: the name the delivery arrived under (None: the protocol
#: carries none) and the text.
Pair = tuple["bytes | None", bytes]


class Accounting:
    """What a receiver's deliveries add up to: the counters, the histograms by
    label, the reference path and the per-pair path (see the module
    docstring); :class:`DeliveryRecorder` adds the fast paths for probe lines.

    ``sender_names``: stream id -> the name its messages arrive under;
    ``labelled``: the histograms by label (default: one label).
    """

    __slots__ = (
        "_from",
        "_hist",
        "_labelled",
        "_name_ids",
        "_name_spaces",
        "_names_b",
        "_pending",
        "_sender_b",
        "_table",
        "_until",
        "blocks_fast",
        "delivered_all",
        "delivered_measured",
        "echoes",
        "last_measured_recv_ns",
        "lines",
        "measure_start_ns",
        "resolve",
        "shared_reads",
    )

    def __init__(
        self,
        sender_names: dict[int, str],
        measure_start_ns: int = 0,
        labelled: Labelled | None = None,
        resolve: Callable[[int], str | None] | None = None,
    ) -> None:
        self._labelled = labelled if labelled is not None else Labelled()
        self.measure_start_ns = measure_start_ns
        self._hist = self._labelled.hists[0]
        # The per-line path's latencies with one label, recorded in batches (see hist).
        self._pending = self._labelled.pending[0]
        self.delivered_all = 0  #: intact, first-time deliveries, warm-up included
        self.delivered_measured = 0  #: the same, measured messages only
        self.last_measured_recv_ns = 0
        self.echoes = 0  #: a receiver's own messages coming back (our server never does this)
        self.lines = 0  #: lines (and pairs) looked at
        self.blocks_fast = 0  #: blocks that took the block path
        #: measured deliveries that shared their read with a later one: one
        #: stamp (the newest segment's) times them all, so each is exact if
        #: they came in one segment and over-stated by the gap if not
        #: (:mod:`bench.net.stamps`); how much of a tail that can be
        self.shared_reads = 0
        #: stream id -> its sender's name as bytes
        self._names_b: dict[int, bytes] = {sid: name.encode("utf-8") for sid, name in sender_names.items()}
        # The per-line path's tables: b"NAME:" -> stream id (a line's text
        # has a fixed number of spaces, so the name is what comes before
        # them, spaces and all: a room's line "#ROOM NAME: TEXT" names
        # "#ROOM NAME"; names holding ": " are left to the reference), and
        # id -> its decimal bytes.
        self._name_ids = {name + b":": sid for sid, name in self._names_b.items() if b": " not in name}
        self._sender_b = {sid: b"%d" % sid for sid in self._name_ids.values()}
        # The block path takes blocks whose names have this many spaces (1:
        # every stream in a room of its own name), others go line by line.
        spaces = {name.count(b" ") for name in self._names_b.values()}
        self._name_spaces = spaces.pop() if len(spaces) == 1 else 0
        self._table: tuple[Any, Any] | None = None  # the block path's name table, built on first use
        # The current interval's bounds: an arrival outside them switches intervals (_moment).
        self._from, self._until = _ALWAYS
        #: sender id -> the name its messages arrive under, for senders not known yet (None: no such sender)
        self.resolve = resolve

    def add_sender(self, sid: int, name: str) -> None:
        """From now on, messages of stream ``sid`` arrive under ``name``."""
        name_b = name.encode("utf-8")
        self._names_b[sid] = name_b
        if b": " not in name_b:
            self._name_ids[name_b + b":"] = sid
            self._sender_b[sid] = b"%d" % sid
        spaces = {known.count(b" ") for known in self._names_b.values()}
        self._name_spaces = spaces.pop() if len(spaces) == 1 else 0
        self._table = None  # rebuilt with the new name on the next block

    # -- pairs -------------------------------------------------------------------

    def record_pairs(self, tracker: IntegrityTracker, own: int, pairs: list[Pair], now: int) -> None:
        """``(name, text)`` pairs received by ``own`` at ``now``, each a
        message whose text may be a probe (anything else is not counted).
        An intact probe in :func:`probe.encode_probe`'s form from a known
        sender costs one split, one CRC call and a few lookups; any other
        probe goes through the reference code."""
        if not self._from <= now < self._until:
            self._moment(now)
        self.lines += len(pairs)
        names = self._names_b
        crc32 = zlib.crc32
        tag = _TAG_BYTES
        labelled = self._labelled
        route = None if labelled.single else labelled.route(own)
        measured = labelled.pending_count()
        delivered = 0
        for name, text in pairs:
            parts = text.split(b" ")  # tag, SENDER, SEQ, INTENDED_NS, PAYLOAD, CHECK
            if (
                len(parts) == 6
                and parts[0] == tag
                and len(parts[5]) == 8
                and text.isascii()
                and crc32(text, 0xFFFFFFFF) == _TEXT_CRC
            ):
                try:
                    sender, seq, intended = int(parts[1]), int(parts[2]), int(parts[3])
                except ValueError:
                    pass
                else:
                    known = names.get(sender)
                    if known is not None and sender != own and (name is None or name == known):
                        delivered += self._take(tracker, sender, seq, intended, now, route)
                        continue
            if text.startswith(tag):
                delivered += self._reference(tracker, own, name, text, now, self._pending, route)
        self._account(delivered, measured, route, now)

    def _take(
        self,
        tracker: IntegrityTracker,
        sender: int,
        seq: int,
        intended: int,
        now: int,
        route: dict[int, list[int]] | None,
    ) -> int:
        """An intact probe from a known sender: 1 if it is a delivery (not a duplicate)."""
        if tracker.observe(sender, seq) == DUPLICATE:
            return 0
        if intended >= self.measure_start_ns:
            latency = (now - intended) // 1000
            if route is None:
                self._pending.append(latency)
            else:
                self._route(route, sender, latency)
        return 1

    # -- the reference ------------------------------------------------------------

    def feed_reference(self, tracker: IntegrityTracker, own: int, lines: list[bytes], now: int) -> list[str]:
        """:meth:`feed` the plain way: every line split by
        :func:`probeline.split_line` and parsed by :func:`probe.parse_probe`.
        The definition the fast paths are tested against."""
        if not self._from <= now < self._until:
            self._moment(now)
        self.lines += len(lines)
        labelled = self._labelled
        route = None if labelled.single else labelled.route(own)
        latencies: list[int] = []
        before = labelled.pending_count()
        other: list[str] = []
        delivered = 0
        for line in lines:
            pair = probeline.split_line(line)
            if pair is None:
                other.append(line.decode("utf-8", "replace"))
                continue
            delivered += self._reference(tracker, own, pair[0], pair[1], now, latencies, route)
        measured = len(latencies) + labelled.pending_count() - before
        self.delivered_all += delivered
        if measured:
            self.delivered_measured += measured
            self.last_measured_recv_ns = now
        self._hist.record_many(latencies)
        return other

    def _reference(  # noqa: PLR0913 - the per-line path's state, passed to stay fast
        self,
        tracker: IntegrityTracker,
        own: int,
        name: bytes | None,
        raw: bytes,
        now: int,
        latencies: list[int],
        route: dict[int, list[int]] | None,
    ) -> int:
        """One probe text (``name``: what it arrived under; None: the
        protocol carries no name), the plain way; returns 1 if it was a
        delivery.  A measured latency goes to ``latencies``, or with labels
        to its stream's list in ``route``."""
        text = raw.decode("utf-8", "replace")
        try:
            parsed = probe.parse_probe(text)
        except probe.CorruptProbe:
            header = probe.probe_header(text)
            if header is None:
                tracker.observe_corrupt()
            else:
                tracker.observe_corrupt(*header)
            return 0
        sender = parsed.sender
        if sender == own:
            self.echoes += 1
            return 0
        known = self._names_b.get(sender)
        if known is None and self.resolve is not None:
            learned = self.resolve(sender)
            if learned is not None:
                self.add_sender(sender, learned)
                known = self._names_b[sender]
        if known is None or (name is not None and name != known):  # attributed to the wrong sender
            tracker.observe_corrupt(sender, parsed.seq)
            return 0
        if tracker.observe(sender, parsed.seq) == DUPLICATE:
            return 0
        if parsed.intended_ns >= self.measure_start_ns:
            latency = (now - parsed.intended_ns) // 1000
            if route is None:
                latencies.append(latency)
            else:
                self._route(route, sender, latency)
        return 1

    # -- bookkeeping --------------------------------------------------------------

    def _route(self, route: dict[int, list[int]], sender: int, latency: int) -> None:
        """A measured latency to its stream's label (a stream the receiver is
        not in the audience of is counted as a stray, not measured)."""
        pending = route.get(sender)
        if pending is None:
            self._labelled.strays += 1
        else:
            pending.append(latency)

    def _account(self, delivered: int, measured_before: int, route: dict[int, list[int]] | None, now: int) -> None:
        """After a per-line or per-pair batch: the delivery counts, and a
        flush when the pending latencies grew long."""
        if not delivered:
            return
        self.delivered_all += delivered
        labelled = self._labelled
        count = len(self._pending) if route is None else labelled.pending_count()
        measured = count - measured_before
        if measured:
            self.delivered_measured += measured
            self.shared_reads += measured - 1
            self.last_measured_recv_ns = now
            if count >= _PENDING_MAX:
                labelled.flush()

    # -- the time axis ------------------------------------------------------------

    def start_intervals(self, axis: IntervalAxis) -> None:
        """Record by interval of ``axis`` (arrival time) from now on."""
        self._labelled.start(axis)
        self._from = self._until = 0  # the next call selects its interval

    def close_intervals(self, until_ns: int, final: bool = False) -> list[ClosedInterval]:
        """The intervals that ended by ``until_ns`` (``final``: all), closed
        (:meth:`Labelled.close`)."""
        closed = self._labelled.close(until_ns, self.delivered_all, final)
        if closed:
            self._from = self._until = 0
        return closed

    @property
    def fault_sink(self) -> list[int]:
        """The list a receiver's tracker counts its faults in, so that each
        is counted in the interval it was seen in (``IntegrityTracker(sink=...)``)."""
        return self._labelled.faults

    def _moment(self, now: int) -> None:
        """An arrival outside the current interval: switch to its interval."""
        labelled = self._labelled
        if labelled.axis is None:
            self._from, self._until = _ALWAYS
            return
        self._from, self._until = labelled.at(now, self.delivered_all)
        self._hist = labelled.hists[0]

    @property
    def hist(self) -> LatencyHistogram:
        """The latency histogram (microseconds) of every measured delivery so
        far (with labels: a fresh merge of theirs)."""
        return self._labelled.merged()

    @property
    def labelled(self) -> Labelled:
        """The histograms by label (flushed)."""
        self._labelled.flush()
        return self._labelled


class DeliveryRecorder(Accounting):
    """:class:`Accounting` with the fast paths for blocks of probe lines:
    what every receive loop of the harness records through."""

    __slots__ = ()

    # -- probe lines -----------------------------------------------------------

    def receive(self, decoder: Any, tracker: IntegrityTracker, own: int, data: bytes, now: int) -> list[str]:
        """One ``recv`` buffer of receiver ``own`` whose protocol delivers
        probe lines as they are (``decoder.feed_block`` cuts the whole lines):
        :meth:`record_lines` of them."""
        return self.record_lines(tracker, own, decoder.feed_block(data), now)

    def record_lines(self, tracker: IntegrityTracker, own: int, block: bytes, now: int) -> list[str]:
        """A block of complete lines (each ending in ``\\n``, a ``\\r``
        before it allowed) received by ``own`` at ``now``
        (``time.monotonic_ns()`` or the kernel's stamp on that clock).
        Returns the lines that carry no probe (notices, errors), decoded,
        for the adapter to look at."""
        if not block:
            return []
        if not self._from <= now < self._until:
            self._moment(now)
        if len(block) >= BLOCK_MIN_BYTES and self._record_block(tracker, own, block, now):
            return []
        lines = block.split(b"\n")
        lines.pop()
        if 13 in block:  # b"\r"
            lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        return self._feed(tracker, own, lines, now, block.isascii())

    def feed(self, tracker: IntegrityTracker, own: int, lines: list[bytes], now: int) -> list[str]:
        """:meth:`record_lines` for lines already split (without endings)."""
        if not self._from <= now < self._until:
            self._moment(now)
        return self._feed(tracker, own, lines, now, False)

    def _record_block(self, tracker: IntegrityTracker, own: int, block: bytes, now: int) -> bool:
        """The block path; False (nothing recorded) when the block does not qualify."""
        import numpy as np

        layout = probeline.line_layout(block, probe.PROBE_SPACES, self._name_spaces)
        if layout is None:
            return False
        probes = probe.parse_probe_block(block, layout)
        if probes is None:
            return False
        sender = probes.sender
        if self._table is None:
            self._table = probeline.name_table(np, self._names_b)
        if (sender == own).any() or not probeline.names_match(np, block, layout.starts, sender, self._table):
            return False
        # Every line is an intact probe from another known sender: account.
        delivered = tracker.observe_block(sender, probes.seq)
        self.lines += len(sender)
        self.blocks_fast += 1
        intended = probes.intended_ns
        if delivered is not None:
            intended = intended[delivered]
        self.delivered_all += len(intended)
        keep = intended >= self.measure_start_ns
        measured = intended[keep]
        if len(measured):
            self.delivered_measured += len(measured)
            self.shared_reads += len(measured) - 1
            self.last_measured_recv_ns = now
            labelled = self._labelled
            if labelled.single:
                self._hist.record_array((now - measured) // 1000)
            else:
                streams = sender if delivered is None else sender[delivered]
                labelled.record_array(own, streams[keep], (now - measured) // 1000)
        return True

    def _feed(self, tracker: IntegrityTracker, own: int, lines: list[bytes], now: int, ascii_known: bool) -> list[str]:
        """The per-line path; ``ascii_known``: the caller checked that every line is ASCII."""
        self.lines += len(lines)
        ids = self._name_ids
        sender_b = self._sender_b
        nxt = tracker._next  # the in-order case of tracker.observe, inlined
        start = self.measure_start_ns
        measure_start: float = start  # an int, but for _NEVER
        crc32 = zlib.crc32
        text_crc = _TEXT_CRC
        tag = _TAG_BYTES
        pending = self._pending
        labelled = self._labelled
        route = None
        if not labelled.single:
            # With labels a measured line goes to its label's list (one dict
            # lookup), below the plain case's test, which then never passes:
            # with one label the loop does nothing more than it always did.
            route = labelled.route(own)
            measure_start = _NEVER
        measured = len(pending) if route is None else labelled.pending_count()
        other: list[str] = []
        delivered = 0
        for line in lines:
            # "NAME:", tag, SENDER, SEQ, INTENDED_NS, PAYLOAD, CHECK (8 bytes
            # after the last space); the name may hold spaces ("#ROOM NAME:")
            parts = line.rsplit(b" ", 6)
            if len(parts) == 7 and parts[1] == tag and len(parts[6]) == 8 and (ascii_known or line.isascii()):
                # A known stream's name (so the line's first ": " ends it), and
                # the sender field is that stream's id, written as encode_probe does.
                sender = ids.get(parts[0])
                if (
                    sender is not None
                    and sender != own
                    and sender_b[sender] == parts[2]
                    # One CRC call checks the whole text (see bench.measure.probe).
                    and crc32(line[len(parts[0]) + 1 :], 0xFFFFFFFF) == text_crc
                ):
                    # int() of ASCII bytes is int() of the text (parse_probe's), so
                    # whatever it accepts ("+5", "1_0") gives the same numbers.
                    try:
                        seq = int(parts[3])
                        intended = int(parts[4])
                    except ValueError:
                        pass
                    else:
                        if seq == nxt.get(sender, 0):
                            nxt[sender] = seq + 1
                        elif tracker.observe(sender, seq) == DUPLICATE:
                            continue
                        delivered += 1
                        if intended >= measure_start:
                            pending.append((now - intended) // 1000)
                        elif route is not None and intended >= start:
                            self._route(route, sender, (now - intended) // 1000)
                        continue
            # Anything else: the reference code.
            pair = probeline.split_line(line)
            if pair is None:
                other.append(line.decode("utf-8", "replace"))
                continue
            delivered += self._reference(tracker, own, pair[0], pair[1], now, pending, route)
        self._account(delivered, measured, route, now)
        return other
