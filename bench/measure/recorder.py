"""The swarm worker's receive path, without sockets.

:meth:`DeliveryRecorder.receive_block` is what the swarm's receive path
(:class:`bench.swarm.receiver.Receiver`) does with every ``recv`` buffer of a
registered receiver, once the decoder cut it into whole lines;
:mod:`bench.studies.replay` runs the same steps (:meth:`DeliveryRecorder.receive`)
over a generated stream to measure the harness's own cost
(``python -m bench replay``).

Three layers, each exact -- the same counters, integrity state and
histogram as the reference per-line code (:meth:`DeliveryRecorder.feed_reference`,
kept for the tests to compare against):

* **block path** (:meth:`DeliveryRecorder.receive`, buffers of at least
  :data:`BLOCK_MIN_BYTES`): the whole buffer's complete lines are laid out
  with numpy (:func:`bench.wire.chatblock.chat_block_layout`), every probe's
  fields parsed and every text checked (:func:`bench.measure.probe.parse_probe_block`:
  *one* ``zlib.crc32`` call for the whole buffer, see :mod:`bench.measure.probe`),
  names compared with the senders' as 8-byte words, integrity checked per
  sender (:meth:`IntegrityTracker.observe_block`) and latencies added to the
  histogram in one step (:meth:`LatencyHistogram.record_array`).  It only
  accepts a buffer in which *every* line is an intact, in-format probe from
  a known sender; anything else (a notice, a corrupted or foreign line)
  sends the buffer down the per-line path, which classifies each line.
  The one exception to exactness is inherited from the CRC: damage on two
  or more lines of one buffer that cancels out in the buffer's CRC (odds
  2**-32, those of a damaged line passing its own check) would go unseen.
* **per-line path** (:meth:`DeliveryRecorder.feed`): per line one split,
  one CRC call and a few lookups accept an intact probe from a known
  sender; every other line goes through the reference code.  Its latencies
  are recorded in batches (:attr:`DeliveryRecorder.hist` flushes them).
* **reference** (:meth:`DeliveryRecorder.feed_reference`): decode, split,
  :func:`probe.parse_probe`, per line.

Given every client's node (a target of several nodes), the recorder also
keeps each measured delivery's path, same node or across, in two histograms
(:class:`bench.measure.paths.PathSplit`, see there); :attr:`DeliveryRecorder.hist`
is then their exact merge.  Without nodes nothing of that runs.
"""

from __future__ import annotations

import zlib
from typing import Any

from bench.measure import probe
from bench.measure.integrity import DUPLICATE, IntegrityTracker
from bench.measure.paths import PathSplit
from bench.measure.stats import LatencyHistogram
from bench.wire import chatblock
from server import protocol

#: Buffers at least this long take the vectorised block path; below it the
#: fixed cost of its ~70 numpy calls (~100-200 us on a 2-core CI-class
#: machine) outweighs the per-line saving: about 150 probe lines of 64-byte
#: payload (measured with ``python -m bench replay``, see reports/perf-harness.md).
BLOCK_MIN_BYTES = 16384

#: Sender ids above this are not put in the block path's name table (they
#: still take the per-line path).
_MAX_TABLE_IDS = 1 << 20

_TAG_BYTES = probe.TAG.encode("ascii")
_TEXT_CRC = probe.TEXT_CRC

#: The per-line path's latencies go into the histogram in batches of this many.
_PENDING_MAX = 4096

#: Above every intended time: with paths, the per-line path's plain
#: ``intended >= measure_start`` test is given this, so it never passes.
_NEVER = float("inf")


def name_table(np: Any, names: dict[int, bytes]) -> tuple[Any, Any]:
    """The block path's name table: per sender id, ``NAME: `` as
    little-endian 8-byte words (zero-padded) and the masks of its bytes,
    shape (ids, 2, words); and the byte offsets of the words."""
    ids = [sid for sid in names if 0 <= sid < _MAX_TABLE_IDS]
    size = max(ids, default=-1) + 1
    width = max((len(names[sid]) + 2 for sid in ids), default=8)
    words = (width + 7) // 8
    table = np.zeros((size, 2, 8 * words), dtype=np.uint8)
    table[:, :, 0] = 0xFF  # not a sender: a byte 0xFF, which no accepted block holds
    for sid in ids:
        prefix = names[sid] + b": "
        table[sid, 0, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
        table[sid, 1, : len(prefix)] = 0xFF
    return table.view("<u8"), np.arange(0, 8 * words, 8)


class DeliveryRecorder:
    """The receive path, without sockets: what a worker does with one
    ``recv`` buffer (:meth:`receive`) or with its lines (:meth:`feed`).

    Per line: ``protocol.split_message``; non-probe chat lines are ignored;
    probes are parsed and checksummed, checked against the sender's chat
    name, accounted in the receiver's :class:`IntegrityTracker`, and -- if
    intended at or after ``measure_start_ns`` -- their latency
    ``now - intended`` (microseconds) goes into the histogram, once per
    call.  See the module docstring for the fast paths.
    """

    __slots__ = (
        "_hist",
        "_name_cols",
        "_name_ids",
        "_name_table",
        "_names_b",
        "_pending",
        "_sender_b",
        "_split",
        "blocks_fast",
        "delivered_all",
        "delivered_measured",
        "echoes",
        "last_measured_recv_ns",
        "lines",
        "measure_start_ns",
        "sender_names",
    )

    def __init__(
        self, sender_names: dict[int, str], measure_start_ns: int = 0, nodes: dict[int, int] | None = None
    ) -> None:
        """``nodes``: client id -> node, for every sender and receiver (None:
        one node, no paths kept)."""
        self.sender_names = sender_names
        self._split = PathSplit(nodes) if nodes is not None else None
        self.measure_start_ns = measure_start_ns
        self._hist = LatencyHistogram()
        # The per-line path's latencies, recorded in batches (see hist).
        self._pending: list[int] = []
        self.delivered_all = 0  #: intact, first-time deliveries, warm-up included
        self.delivered_measured = 0  #: the same, measured messages only
        self.last_measured_recv_ns = 0
        self.echoes = 0  #: a receiver's own messages coming back (our server never does this)
        self.lines = 0
        self.blocks_fast = 0  #: buffers that took the block path
        # Sender names as bytes, only those a chat line can carry unambiguously
        # (split_message of "NAME: x" gives NAME back): the fast paths compare
        # a line's name bytes with these, so a name they hold is a valid one.
        self._names_b: dict[int, bytes] = {
            sid: name.encode("utf-8")
            for sid, name in sender_names.items()
            if protocol.split_message(name + ": x") == (name, "x")
        }
        # The per-line path's tables: b"NAME:" -> sender id, and id -> its decimal bytes.
        self._name_ids = {name + b":": sid for sid, name in self._names_b.items()}
        self._sender_b = {sid: b"%d" % sid for sid in self._names_b}
        self._name_table: Any = None  # built on first use of the block path
        self._name_cols: Any = None

    # -- one recv buffer ---------------------------------------------------------

    def receive(
        self, decoder: protocol.LineDecoder, tracker: IntegrityTracker, own: int, data: bytes, now: int
    ) -> list[str]:
        """One ``recv`` buffer of the registered receiver ``own``, received at
        ``now`` (``time.monotonic_ns()``): what the worker does per ``recv``.
        ``decoder`` is that connection's line decoder.  Returns the lines that
        are not chat messages (notices, errors).  Raises
        :class:`protocol.LineTooLong` like the decoder."""
        return self.receive_block(tracker, own, decoder.feed_block(data), now)

    def receive_block(self, tracker: IntegrityTracker, own: int, block: bytes, now: int) -> list[str]:
        """:meth:`receive` for complete chat lines already cut from the stream
        (``LineDecoder.feed_block``'s result, or an adapter's translation)."""
        if not block:
            return []
        if len(block) >= BLOCK_MIN_BYTES and self._receive_block(tracker, own, block, now):
            return []
        if 13 in block:  # b"\r": the lines need split_block
            return self._feed(tracker, own, protocol.split_block(block), now, block.isascii())
        lines = block.split(b"\n")  # split_block without its "\r" handling
        lines.pop()
        return self._feed(tracker, own, lines, now, block.isascii())

    def _receive_block(self, tracker: IntegrityTracker, own: int, block: bytes, now: int) -> bool:
        """The block path; False (nothing recorded) when the block does not
        qualify."""
        import numpy as np

        layout = chatblock.chat_block_layout(block, probe.PROBE_SPACES)
        if layout is None:
            return False
        probes = probe.parse_probe_block(block, layout)
        if probes is None:
            return False
        sender = probes.sender
        if not self.names_match(np, block, layout.starts, sender, own):
            return False
        # Every line is an intact probe from another known sender: account.
        delivered = tracker.observe_block(sender, probes.seq)
        n = len(sender)
        self.lines += n
        self.blocks_fast += 1
        intended = probes.intended_ns
        if delivered is not None:
            intended = intended[delivered]
        self.delivered_all += len(intended)
        keep = intended >= self.measure_start_ns
        measured = intended[keep]
        if len(measured):
            self.delivered_measured += len(measured)
            self.last_measured_recv_ns = now
            if self._split is None:
                self._hist.record_array((now - measured) // 1000)
            else:
                senders = sender if delivered is None else sender[delivered]
                self._split.record_array(senders[keep], own, (now - measured) // 1000)
        return True

    def names_match(self, np: Any, block: bytes, starts: Any, sender: Any, own: int) -> bool:
        """Every line's chat name is the name of the sender its probe names,
        and no probe is the receiver's own.  Compares each line's first
        bytes with ``NAME: `` of its sender, as 8-byte words: the space ends
        the name there, since a line's first space is its ``": "``'s."""
        if self._name_table is None:
            self._name_table, self._name_cols = name_table(np, self._names_b)
        table = self._name_table
        if int(sender.max()) >= len(table) or (sender == own).any():
            return False
        w = probe.words_view(np, block)
        pos = starts[:, None] + self._name_cols
        if int(starts[-1]) + int(self._name_cols[-1]) >= len(w):
            pos = np.minimum(pos, len(w) - 1)  # words past the block's end: masked off
        got = w[pos]
        want = table[sender]
        return bool(((got & want[:, 1]) == want[:, 0]).all())

    # -- lines -------------------------------------------------------------------

    def feed(self, tracker: IntegrityTracker, own: int, lines: list[bytes], now: int) -> list[str]:
        """Account ``lines`` (as :meth:`protocol.LineDecoder.feed` returns
        them) received by the receiver ``own`` at ``now``.  Returns the lines
        that are not chat messages (notices, errors), for the caller to look
        at.  Same results as :meth:`feed_reference`; an intact probe in the
        form :func:`probe.encode_probe` writes costs a few bytes
        operations, anything else goes through the reference code."""
        return self._feed(tracker, own, lines, now, False)

    def _feed(self, tracker: IntegrityTracker, own: int, lines: list[bytes], now: int, ascii_known: bool) -> list[str]:
        """:meth:`feed`; ``ascii_known``: the caller checked that every line
        is ASCII."""
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
        split = self._split
        route = None
        if split is not None:
            # With paths a measured line goes to its path's list (one dict
            # lookup), below the plain case's test, which then never passes:
            # without paths the loop does nothing more than it always did.
            route = split.route(own)
            measure_start = _NEVER
        measured = len(pending) if split is None else split.pending_count()
        other: list[str] = []
        delivered = 0
        for line in lines:
            # "NAME:", tag, SENDER, SEQ, INTENDED_NS, PAYLOAD, CHECK (8 bytes after the last space)
            parts = line.split(b" ")
            if len(parts) == 7 and parts[1] == tag and len(parts[6]) == 8 and (ascii_known or line.isascii()):
                # A known sender's name (so the line's first ": " ends it), and
                # the sender field is that sender's id, written as encode_probe does.
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
                            route[sender].append((now - intended) // 1000)
                        continue
            # Anything else: the reference code.
            delivered += self._reference_line(tracker, own, line, now, pending, other, route)
        if delivered:
            self.delivered_all += delivered
            count = len(pending) if split is None else split.pending_count()
            if count != measured:
                self.delivered_measured += count - measured
                self.last_measured_recv_ns = now
                if count >= _PENDING_MAX:
                    self._flush()
        return other

    def feed_reference(self, tracker: IntegrityTracker, own: int, lines: list[bytes], now: int) -> list[str]:
        """:meth:`feed` the plain way: every line decoded, split and parsed
        by :func:`protocol.split_message` and :func:`probe.parse_probe`.
        The definition the fast paths are tested against."""
        self.lines += len(lines)
        latencies: list[int] = []
        other: list[str] = []
        delivered = 0
        split = self._split
        route = split.route(own) if split is not None else None
        before = split.pending_count() if split is not None else 0
        for line in lines:
            delivered += self._reference_line(tracker, own, line, now, latencies, other, route)
        measured = len(latencies) + (split.pending_count() - before if split is not None else 0)
        self.delivered_all += delivered
        if measured:
            self.delivered_measured += measured
            self.last_measured_recv_ns = now
        self._hist.record_many(latencies)
        return other

    def _reference_line(  # noqa: PLR0913 - the per-line path's state, passed to stay fast
        self,
        tracker: IntegrityTracker,
        own: int,
        line: bytes,
        now: int,
        latencies: list[int],
        other: list[str],
        route: dict[int, list[int]] | None = None,
    ) -> int:
        """One line, the plain way; returns 1 if it was a delivery.  A
        measured latency goes to ``latencies``, or with paths to its sender's
        list in ``route``."""
        text = protocol.decode_text(line)
        msg = protocol.split_message(text)
        if msg is None:
            other.append(text)
            return 0
        name, body = msg
        if not probe.is_probe(body):
            return 0
        try:
            parsed = probe.parse_probe(body)
        except probe.CorruptProbe:
            header = probe.probe_header(body)
            if header is None:
                tracker.observe_corrupt()
            else:
                tracker.observe_corrupt(*header)
            return 0
        sender = parsed.sender
        if sender == own:
            self.echoes += 1
            return 0
        if self.sender_names.get(sender) != name:  # attributed to the wrong sender
            tracker.observe_corrupt(sender, parsed.seq)
            return 0
        if tracker.observe(sender, parsed.seq) == DUPLICATE:
            return 0
        if parsed.intended_ns >= self.measure_start_ns:
            (latencies if route is None else route[sender]).append((now - parsed.intended_ns) // 1000)
        return 1

    def _flush(self) -> None:
        """Record the per-line path's pending latencies in their histogram(s)."""
        self._hist.record_list(self._pending)
        self._pending.clear()
        if self._split is not None:
            self._split.flush()

    @property
    def hist(self) -> LatencyHistogram:
        """The latency histogram (microseconds) of every measured delivery so
        far (with paths: a fresh merge of the two)."""
        self._flush()
        return self._hist if self._split is None else self._split.merged()

    @property
    def paths(self) -> PathSplit | None:
        """The same-node and cross-node histograms (flushed); None without nodes."""
        self._flush()
        return self._split
