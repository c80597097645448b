"""A worker's sending side: the open-loop schedule of probes.

Senders emit their probes at the intended send times (open loop: a late loop
iteration sends everything due at once, and the probe carries the *intended*
time, so lateness shows up as latency and in ``send_lag``).  What is not
written at once is buffered per connection and flushed when the socket is
writable; a message counts as sent once the kernel took all of it.  Over
TLS each message is encrypted as it is queued (one record each), so the
buffer holds records and the same byte counting applies.
"""

from __future__ import annotations

import heapq

from bench.measure import probe
from bench.measure.stats import LatencyHistogram
from bench.swarm.connections import CONTROL, READY, Conn, Sockets
from bench.swarm.messages import Sent
from bench.swarm.plan import Schedule
from bench.wire import Adapter

#: Different payloads :func:`probe.make_payload` makes: it varies only with
#: ``(sender * 7 + seq)`` modulo its alphabet's size, so that many cover all.
PAYLOAD_VARIANTS = 62


class Sender:
    """Runs the schedule for a worker's sending connections."""

    def __init__(self, payload_bytes: int, adapter: Adapter, sockets: Sockets) -> None:
        self.payload_bytes = payload_bytes
        self.encode_message = adapter.encode_message
        self.sockets = sockets
        self.schedule: Schedule | None = None
        self.heap: list[tuple[int, int, Conn]] = []  # (due_ns, global m, sender)
        self.sending = False
        self.send_lag = LatencyHistogram()
        self.payloads: dict[int, str] = {}

    def start(self, schedule: Schedule, conns: list[Conn]) -> None:
        """Begin the timetable for the ready connections among ``conns``."""
        self.schedule = schedule
        for conn in conns:
            slot = conn.spec.slot
            if conn.state == READY and slot is not None and slot < schedule.total:
                self.heap.append((schedule.intended_ns(slot), slot, conn))
        heapq.heapify(self.heap)
        self.sending = True

    def due_ns(self) -> int | None:
        """When the next message is due, or None when nothing is to be sent."""
        if self.sending and self.heap:
            return self.heap[0][0]
        return None

    def stop(self, senders: list[Conn]) -> Sent:
        """Stop writing; what every sender fully handed to the kernel."""
        self.sending = False
        return Sent(
            {c.spec.cid: c.sent for c in senders},
            {c.spec.cid: c.measured_sent for c in senders},
            sum(len(c.outbuf) for c in senders),
        )

    def _payload(self, cid: int, seq: int) -> str:
        # Cached by the only thing the payload varies with, to keep the send path cheap.
        key = (cid * 7 + seq) % PAYLOAD_VARIANTS
        payload = self.payloads.get(key)
        if payload is None:
            payload = self.payloads[key] = probe.make_payload(self.payload_bytes, cid, seq)
        return payload

    def emit_due(self, now: int) -> None:
        """Queue and write every message due by ``now``."""
        schedule = self.schedule
        assert schedule is not None
        heap = self.heap
        senders = schedule.senders
        total = schedule.total
        warmup = schedule.warmup
        encode_message = self.encode_message
        dirty: list[Conn] = []
        lags: list[int] = []
        while heap and heap[0][0] <= now:
            due, m, conn = heapq.heappop(heap)
            if conn.state != READY:
                continue
            seq = m // senders
            cid = conn.spec.cid
            text = probe.encode_probe(cid, seq, due, self._payload(cid, seq))
            data = encode_message(conn.spec.name, text)
            if conn.tls is not None:  # one record per message, as a client sends it
                data = conn.tls.encrypt(data)
            if not conn.outbuf:
                dirty.append(conn)
            conn.outbuf += data
            conn.out_lens.append(len(data) if m >= warmup else -len(data))
            conn.next_seq = seq + 1
            lags.append((now - due) // 1000)
            nxt = m + senders
            if nxt < total:
                heapq.heappush(heap, (schedule.intended_ns(nxt), nxt, conn))
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
            conn.sent += 1
            if size > 0:
                conn.measured_sent += 1
    conn.out_head_done = done
