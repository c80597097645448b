"""A worker's sending side: the open-loop schedule of probes.

Senders emit their probes at the intended send times (open loop: a late loop
iteration sends everything due at once, and the probe carries the *intended*
time, so lateness shows up as latency and in ``send_lag``).  What is not
written at once is buffered per connection and flushed when the socket is
writable; a message counts as sent once the kernel took all of it, per
stream (a connection that sends to several rooms has a stream per room,
each with its own sequence numbers and counts).  Over TLS each message is
encrypted as it is queued (one record each), so the buffer holds records
and the same byte counting applies.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from bench.measure import probe
from bench.measure.stats import LatencyHistogram
from bench.swarm.connections import CONTROL, READY, Conn, Sockets
from bench.swarm.messages import Sent
from bench.swarm.plan import Schedule
from bench.wire import Adapter
from bench.workload import Plan

#: Different payloads :func:`probe.make_payload` makes: it varies only with
#: ``(sender * 7 + seq)`` modulo its alphabet's size, so that many cover all.
PAYLOAD_VARIANTS = 62


@dataclass(slots=True, eq=False)
class Outgoing:
    """One stream of a worker's: its sender's connection, its room, its
    messages (global numbers, in order) and how far it got."""

    sid: int  #: stream id: the probe's SENDER field
    conn: Conn
    room: str  #: the plan's room ("" the target's one room)
    messages: Sequence[int]  #: its messages' numbers; the index of one is its sequence number
    next: int = 0  #: index in ``messages`` of the next to send


class Sender:
    """Runs the schedule for a worker's sending connections, one entry per stream."""

    def __init__(self, payload_bytes: int, adapter: Adapter, sockets: Sockets, plan: Plan | None = None) -> None:
        self.payload_bytes = payload_bytes
        self.encode_message = adapter.encode_message
        self.sockets = sockets
        #: the run's plan: which streams a sending connection has (None: one
        #: stream each, its id the client's, its slot the client's)
        self.plan = plan
        self.schedule: Schedule | None = None
        self.heap: list[tuple[int, int, Outgoing]] = []  # (due_ns, global m, stream)
        self.streams: list[Outgoing] = []
        self.sending = False
        self.send_lag = LatencyHistogram()
        self.payloads: dict[tuple[int, int], str] = {}
        self._sizes: list[int] | None = None  # message m's payload bytes, when drawn

    def start(self, schedule: Schedule, conns: list[Conn]) -> None:
        """Begin the timetable for the ready connections among ``conns``."""
        self.schedule = schedule
        by_slot = schedule.slot_messages()
        sizes = schedule.traffic.size_of
        self._sizes = sizes.tolist() if sizes is not None else None
        for conn in conns:
            if conn.state != READY or conn.spec.slot is None:
                continue
            for sid, slot, room in self._streams_of(conn):
                if slot >= schedule.senders:
                    continue
                messages = by_slot[slot]
                stream = Outgoing(sid, conn, room, messages)
                conn.sent_by.setdefault(sid, 0)
                conn.measured_by.setdefault(sid, 0)
                self.streams.append(stream)
                if messages:
                    self.heap.append((schedule.intended_ns(messages[0]), messages[0], stream))
        heapq.heapify(self.heap)
        self.sending = True

    def _streams_of(self, conn: Conn) -> list[tuple[int, int, str]]:
        """(stream id, slot, room) of each stream ``conn`` sends."""
        spec = conn.spec
        if self.plan is None:
            assert spec.slot is not None
            return [(spec.cid, spec.slot, "")]
        plan = self.plan
        return [(st.sid, st.slot, plan.rooms[st.room].name) for st in plan.streams_of(spec.cid)]

    def due_ns(self) -> int | None:
        """When the next message is due, or None when nothing is to be sent."""
        if self.sending and self.heap:
            return self.heap[0][0]
        return None

    def pending(self) -> int:
        """Messages live streams still have to hand to the kernel (buffered or not yet due)."""
        return sum(len(st.messages) - st.conn.sent_by[st.sid] for st in self.streams if st.conn.state == READY)

    def stop(self, senders: list[Conn]) -> Sent:
        """Stop writing; what every stream fully handed to the kernel."""
        self.sending = False
        sent: dict[int, int] = {}
        measured: dict[int, int] = {}
        for c in senders:
            sent.update(c.sent_by)
            measured.update(c.measured_by)
        return Sent(sent, measured, sum(len(c.outbuf) for c in senders))

    def _payload(self, sid: int, seq: int, size: int) -> str:
        # Cached by the only things the payload varies with, to keep the send path cheap.
        key = (size, (sid * 7 + seq) % PAYLOAD_VARIANTS)
        payload = self.payloads.get(key)
        if payload is None:
            payload = self.payloads[key] = probe.make_payload(size, sid, seq)
        return payload

    def emit_due(self, now: int) -> None:
        """Queue and write every message due by ``now``."""
        schedule = self.schedule
        assert schedule is not None
        heap = self.heap
        warmup = schedule.warmup
        intended_ns = schedule.intended_ns
        encode_message = self.encode_message
        sizes = self._sizes
        size = self.payload_bytes
        dirty: list[Conn] = []
        lags: list[int] = []
        while heap and heap[0][0] <= now:
            due, m, stream = heapq.heappop(heap)
            conn = stream.conn
            if conn.state != READY:
                continue
            seq = stream.next
            sid = stream.sid
            if sizes is not None:
                size = sizes[m]
            text = probe.encode_probe(sid, seq, due, self._payload(sid, seq, size))
            data = encode_message(conn.spec.name, text, stream.room)
            if conn.tls is not None:  # one record per message, as a client sends it
                data = conn.tls.encrypt(data)
            if not conn.outbuf:
                dirty.append(conn)
            conn.outbuf += data
            conn.out_lens.append(len(data) if m >= warmup else -len(data))
            conn.out_streams.append(sid)
            stream.next = seq + 1
            lags.append((now - due) // 1000)
            if seq + 1 < len(stream.messages):
                nxt = stream.messages[seq + 1]
                heapq.heappush(heap, (intended_ns(nxt), nxt, stream))
        if lags:
            self.send_lag.record_many(lags)
        for conn in dirty:
            if not conn.writing:
                self.flush(conn)

    def flush(self, conn: Conn) -> None:
        """Write what the kernel takes of ``conn``'s buffer; wait for
        writability while some is left."""
        if not conn.outbuf:
            return
        try:
            n = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self.sockets.close(conn, f"send: {exc.strerror or exc}")
            return
        if n:
            del conn.outbuf[:n]
            _account_sent(conn, n)
        want_write = bool(conn.outbuf)
        if want_write != conn.writing:
            self.sockets.want_write(conn, want_write)

    def writable(self, conn: Conn) -> None:
        """A registered connection can be written to."""
        if self.sending:
            self.flush(conn)
        else:
            self.sockets.want_write(conn, False)

    def send_control(self, conn: Conn, data: bytes) -> None:
        """Protocol replies during traffic (``PONG``): queued behind any
        buffered messages, not counted as messages."""
        if conn.state != READY:
            return
        if conn.tls is not None:
            data = conn.tls.encrypt(data)
        conn.outbuf += data
        conn.out_lens.append(CONTROL + len(data))
        if not conn.writing:
            self.flush(conn)


def _account_sent(conn: Conn, n: int) -> None:
    """``n`` more bytes of ``conn``'s buffer were written: count the messages
    they complete (the warm-up's are stored negative, controls offset)."""
    lens = conn.out_lens
    done = conn.out_head_done + n
    while lens:
        size = lens[0]
        length = size - CONTROL if size >= CONTROL else abs(size)
        if done < length:
            break
        done -= length
        lens.popleft()
        if size < CONTROL:
            sid = conn.out_streams.popleft()
            conn.sent += 1
            conn.sent_by[sid] += 1
            if size > 0:
                conn.measured_sent += 1
                conn.measured_by[sid] += 1
    conn.out_head_done = done
