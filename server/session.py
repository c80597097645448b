"""One connected client: registration -> chat -> closed, in its own reader thread.

Everything a client can do wrong ends in this session's ``finally`` and
nowhere else: the leave notice goes out exactly once and the socket is
closed exactly once, whatever happened.

A session is given what it needs in a :class:`SessionContext` (the hub, the
limits, the fan-out strategy that builds its outbox, and the server's
``forget``), never the server itself.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from server import protocol
from server.accounts import MAX_PASSWORD_BYTES
from server.config import ServerConfig
from server.fanout import Fanout, Outbox, OverflowHook
from server.flood import TokenBucket, Verdict
from server.handlers import EndSession, dispatch
from server.hub import Hub, NameTaken
from server.login import MAX_ATTEMPTS_PER_CONNECTION, Login, Outcome
from server.rooms import NO_ROOM_ERROR, Room

log = logging.getLogger(__name__)

#: Bytes asked of the kernel per recv.  64 KiB lets one call pick up a whole
#: burst, whose chat lines are then broadcast as one batch per recipient.
RECV_BYTES = 65536

#: How long a session that is ending waits for the client to close after our
#: last line (see ``Session._linger``).
LINGER_SECONDS = 2.0

#: The first byte of a TLS client's first record (a handshake): no name can
#: start with it (a control character), so on the plaintext port it means
#: a TLS client came to the wrong port.
TLS_HANDSHAKE_START = b"\x16"


def kernel_socket(sock: object) -> socket.socket:
    """The OS socket under a transport's wrappers (``WsSocket``,
    ``TlsSocket``: each keeps the one below as ``raw``)."""
    while not isinstance(sock, socket.socket):
        sock = sock.raw  # type: ignore[attr-defined]
    return sock


#: ``tcp_info.tcpi_state`` of a socket the peer reset (``TCP_CLOSE``; a FIN
#: leaves ``TCP_CLOSE_WAIT`` until we close our side).
TCP_CLOSE = 7


def reset_by_peer(sock: object) -> bool:
    """The peer reset the connection under ``sock``, as far as its state
    says: for a reader that saw end-of-file because another thread's send
    took the reset error first (a send returns ECONNRESET once, then the
    reader's recv returns b"")."""
    try:
        info = kernel_socket(sock).getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)
    except (OSError, AttributeError):
        return False
    return info[0] == TCP_CLOSE


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What every session of one server shares."""

    hub: Hub
    #: The limits: line length, registration timeout, flood control.
    config: ServerConfig
    #: The server's fan-out strategy; it builds each session's outbox.
    fanout: Fanout
    #: Called by a session's reader thread as its very last act.
    forget: Callable[[Session], None]
    #: The login policy with ``--accounts`` (passwords); None: names only.
    login: Login | None = None


def _overflow_hook(session: Session) -> OverflowHook:
    """The outbox's call back to its session when its send queue overflows,
    holding the session only weakly.  The session holds the outbox, so a
    bound method would close a reference cycle, and every ended session
    (its socket, decoder, outbox and queues) would wait for the cyclic
    garbage collector instead of going at once: under churn (500
    connections a second) 20,000-80,000 objects at a time, and the server's
    RSS grew from 32 to 48 MiB after 20,000 churned (``make soak-churn``)."""
    ref = weakref.ref(session)

    def overflow() -> None:
        alive = ref()
        if alive is not None:
            alive._send_queue_exceeded()

    return overflow


class Session:
    """One client's reader thread (``run``) and what other threads may do to
    it (``send``, ``disconnect``, ``wake``)."""

    def __init__(self, context: SessionContext, sock: socket.socket, peer: str) -> None:
        self.hub = context.hub
        self._forget = context.forget
        self.sock = sock
        #: Waits for input on a non-blocking socket (made so by the queued fan-out's
        #: outbox): made at the first recv that found nothing, then polled before each.
        self._poller: select.poll | None = None
        self.peer = peer
        #: The address without the port: what failed logins are counted by.
        self.peer_host = peer.rsplit(":", 1)[0].strip("[]")
        self.login = context.login
        #: The account this session logged in to (None: a guest, or no accounts).
        self.account: str | None = None
        self._failed_logins = 0
        #: Our name once the hub accepted it (set by us after ``Hub.join`` and
        #: by the /nick handler after ``Hub.rename``); None until registered.
        self.name: str | None = None
        #: Where plain text goes: the room joined last (the lobby after
        #: registration; set by the /join and /part handlers from the hub's
        #: answer); None when in no room.
        self.room: Room | None = None
        #: The room the chat lines batched in ``_handle`` go to.
        self._batch_room: Room | None = None
        config = context.config
        self.decoder = protocol.LineDecoder(config.max_line_bytes, discard_oversized=True)
        self.outbox: Outbox = context.fanout.outbox(sock, _overflow_hook(self), peer)
        #: Why the session ends, when something other than the reader decides.
        self._end_reason: str | None = None
        #: Set when the session is being ended from outside; cuts flood waits short.
        self._ending = threading.Event()
        self.bucket = TokenBucket(config.rate_limit, config.rate_burst) if config.rate_limit > 0 else None
        #: monotonic time of the last bytes received (for the idle timeout).
        self.last_activity = time.monotonic()
        #: When an unregistered session is cut off ("registration timeout").
        self.registration_deadline = self.last_activity + config.registration_timeout

    # -- called from other threads ----------------------------------------

    def send(self, data: bytes) -> None:
        self.outbox.send(data)

    def disconnect(self, reason: str, wake_reader: bool = True) -> None:
        """End this session from any thread: a last line, then the reader
        wakes up with EOF and cleans up.  With ``wake_reader=False`` only the
        last line goes out (see ``ChatServer.shutdown``); ``wake()`` finishes."""
        if self._end_reason is None:
            self._end_reason = reason
        self._ending.set()
        self.outbox.close(protocol.encode_disconnect(reason), wake_reader)

    def wake(self) -> None:
        """Shut the socket down so the reader's recv returns and it cleans up."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def keepalive(self, now: float) -> None:
        """Called by the server's reaper about once a second for a registered
        session: a transport with keepalive of its own (WebSocket pings)
        acts here; TCP relies on TCP keepalive."""

    def _send_queue_exceeded(self) -> None:
        log.warning("%s (%s): send queue exceeded, disconnecting", self.name or "?", self.peer)
        if self._end_reason is None:
            self._end_reason = "send queue exceeded"
        self.wake()

    # -- the reader thread ------------------------------------------------------

    def run(self) -> None:
        reason = "connection closed"
        try:
            self._register()
            if self.name is not None:
                self._chat()
        except EndSession as end:
            reason = end.reason
            self._leave(reason)  # others hear of it now, not after the linger
            self.outbox.close(protocol.encode_disconnect(end.farewell), half_close=end.linger)
            if end.linger:
                self._linger()
        except ConnectionResetError:
            reason = "connection reset"
        except OSError as exc:
            reason = f"socket error: {exc.strerror or exc}"
        except Exception:
            log.exception("%s (%s): unexpected error", self.name or "?", self.peer)
            reason = "server error"
        finally:
            if self._end_reason is not None:
                reason = self._end_reason
            elif reason == "connection closed" and (
                isinstance(self.outbox.failure, ConnectionResetError) or reset_by_peer(self.sock)
            ):
                reason = "connection reset"
            self._leave(reason)
            if self.name is None:
                log.debug("%s disconnected before registering (%s)", self.peer, reason)
            self.outbox.close()
            self.outbox.dispose()
            self._forget(self)

    def _leave(self, reason: str) -> None:
        """Leave the hub (announced to the others) if still a member."""
        if self.hub.leave(self, reason):
            log.info("%s left (%s)", self.name, reason)

    def _linger(self) -> None:
        """After our last line and FIN, read (and drop) what the client still
        sends until it closes, for at most LINGER_SECONDS.  Closing a socket
        with unread input makes the kernel send a reset, which can destroy the
        last line before the client reads it."""
        # poll(), not a socket timeout: a timeout would also make every send on
        # this socket wait for room first, and the flusher must never wait.
        deadline = time.monotonic() + LINGER_SECONDS
        # The kernel socket, not a transport over it: what is drained is
        # dropped, and a TLS record cut short must not make us wait for the rest.
        sock = kernel_socket(self.sock)
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                if poller.poll(remaining * 1000) and not sock.recv(RECV_BYTES):
                    return
        except OSError:
            pass

    def _recv(self) -> bytes:
        """The next bytes (b"" at the end).  A plain socket under the queued
        fan-out is non-blocking (its outbox writes it with ``os.write``): the
        reader then waits for input in poll, which returns at input, at the
        end and when the socket is shut down."""
        poller = self._poller
        if poller is not None:
            # Wait first: at a chat's pace the socket is empty when we come
            # back for more, and a recv that finds it so raises
            # BlockingIOError, which costs more than this poll (its message
            # is decoded from the locale: reports/perf-server.md, round 6).
            poller.poll()
        while True:
            try:
                return self.sock.recv(RECV_BYTES)
            except BlockingIOError:
                if self._poller is None:
                    self._poller = select.poll()
                    self._poller.register(self.sock, select.POLLIN)
                self._poller.poll()

    def recv_lines(self) -> list[bytes] | None:
        """Next complete lines, or None at EOF.  Reports dropped oversized lines.
        The one hook a transport overrides (``server.websocket``)."""
        before = self.decoder.oversized
        data = self._recv()
        if not data:
            return None
        self.last_activity = time.monotonic()
        if self.name is None and data.startswith(TLS_HANDSHAKE_START) and type(self.sock) is socket.socket:
            log.warning("%s: a TLS handshake on the plaintext port, closing", self.peer)
            raise EndSession("TLS on the plaintext port", farewell="this port does not speak TLS", linger=False)
        lines = self.decoder.feed(data)
        if self.decoder.oversized != before:
            limit = self.decoder.max_line_bytes
            self.send(protocol.encode_error(f"Line too long (limit {limit} bytes), dropped"))
        return lines

    def _register(self) -> None:
        # The registration deadline is enforced by the server's reaper thread
        # (see ChatServer._reap), which disconnects this session when it passes.
        self.send(protocol.encode_prompt())
        waiting: str | None = None  # a valid name whose password is the next line
        while (lines := self.recv_lines()) is not None:
            for i, line in enumerate(lines):
                self._pace()
                if waiting is None:
                    name = self._valid_name(protocol.decode_text(line))
                    if name is not None and self.login is not None:
                        waiting = name
                        self.send(protocol.encode_password_prompt())
                        continue
                else:
                    name, waiting = waiting, None
                    if not self._logged_in(name, protocol.decode_text(line)):
                        continue
                if name is not None and self._try_join(name):
                    self._handle(lines[i + 1 :])
                    return

    def _valid_name(self, raw: str) -> str | None:
        try:
            return protocol.validate_name(raw)
        except protocol.ProtocolError as exc:
            self.send(protocol.encode_error(f"Invalid name: {exc}"))
            self.send(protocol.encode_prompt())
            return None

    def _logged_in(self, name: str, password: str) -> bool:
        """Check ``name``'s password (``--accounts``); on failure tell the
        client (after a pause, the same for every failure) and ask again."""
        assert self.login is not None
        verdict = self.login.check(self.peer_host, name, password)
        if verdict.outcome is Outcome.ACCOUNT:
            self.account = name
            return True
        if verdict.outcome is Outcome.GUEST:
            return True
        if verdict.outcome is Outcome.LIMITED:
            self.send(
                protocol.encode_error(
                    f"Too many failed logins from your address; try again in {max(1, round(verdict.retry_after))} s"
                )
            )
            raise EndSession("too many failed logins", farewell="too many failed logins", linger=False)
        self._failed_logins += 1
        self._ending.wait(self.login.failure_delay)
        if verdict.outcome is Outcome.TOO_LONG:
            self.send(protocol.encode_error(f"Login failed: password too long (limit {MAX_PASSWORD_BYTES} bytes)"))
        else:
            self.send(protocol.encode_error("Login failed: unknown name or wrong password"))
        if self._failed_logins >= MAX_ATTEMPTS_PER_CONNECTION:
            raise EndSession("too many failed logins", farewell="too many failed logins", linger=False)
        self.send(protocol.encode_prompt())
        return False

    def may_rename(self, new_name: str) -> str | None:
        """Why this session may not take ``new_name`` with /nick, or None.
        With accounts, a registered name is only for its owner."""
        return None if self.login is None else self.login.rename_refusal(self.account, new_name)

    def _try_join(self, name: str) -> bool:
        try:
            self.hub.join(self, name)
        except NameTaken:
            self.send(protocol.encode_error(f"Name taken: {name}"))
            self.send(protocol.encode_prompt())
            return False
        self.name = name
        self.room = self.hub.lobby
        log.info("%s joined from %s%s", name, self.peer, " (account)" if self.account else "")
        return True

    def _chat(self) -> None:
        while (lines := self.recv_lines()) is not None:
            self._handle(lines)

    def _handle(self, lines: list[bytes]) -> None:
        """Act on a batch of lines.  Consecutive chat lines to one room become
        one broadcast, so each recipient gets one send per batch, not per line."""
        name = self.name
        assert name is not None
        pending: list[bytes] = []
        for line in lines:
            if self.bucket is not None and self._pace(pending):
                continue
            text = protocol.sanitize_text(protocol.decode_text(line))
            try:
                cmd = protocol.parse_client_line(text)
            except protocol.ProtocolError as exc:
                self._flush(pending)
                self.send(protocol.encode_error(str(exc)))
                continue
            if cmd is None:
                continue
            if type(cmd) is protocol.Say:
                room = self.room
                if room is None or room is not self._batch_room:
                    self._flush(pending)
                    if room is None:
                        self.send(protocol.encode_error(NO_ROOM_ERROR))
                        continue
                    self._batch_room = room
                pending.append(room.message(name, cmd.text))
                continue
            if type(cmd) is protocol.SayTo:
                self._say_to(cmd, pending)
                continue
            self._flush(pending)
            dispatch(self, cmd)
        self._flush(pending)

    def _say_to(self, cmd: protocol.SayTo, pending: list[bytes]) -> None:
        """``/say #ROOM TEXT``: batched like plain text, for one of our rooms."""
        assert self.name is not None
        room = self.hub.member_room(self, cmd.room)
        if room is None:
            self._flush(pending)
            self.send(protocol.encode_error(f"You are not in {cmd.room}; /join {cmd.room} first"))
            return
        if room is not self._batch_room:
            self._flush(pending)
            self._batch_room = room
        pending.append(room.message(self.name, cmd.text))

    def _pace(self, pending: list[bytes] | None = None) -> bool:
        """Flood control for one line: returns after the line may be handled
        (delaying it if the client is over its rate); raises EndSession for a
        persistent flooder.  Returns True if the line should be skipped (the
        session is ending anyway)."""
        bucket = self.bucket
        if bucket is None:
            return False
        verdict = bucket.take()
        if verdict is Verdict.OK:
            return False
        if pending:
            self._flush(pending)
        if verdict is Verdict.FLOOD:
            log.warning("%s (%s): excess flood, disconnecting", self.name or "?", self.peer)
            raise EndSession("excess flood", farewell="excess flood", linger=False)
        if verdict is Verdict.WARN:
            self.send(
                protocol.encode_error(
                    f"Flooding: the limit is {bucket.rate:g} lines/s (bursts of {bucket.burst}); "
                    "your lines are being delayed, keep going and you will be disconnected"
                )
            )
        return self._ending.wait(bucket.delay)

    def _flush(self, pending: list[bytes]) -> None:
        if pending:
            self.hub.broadcast(b"".join(pending) if len(pending) > 1 else pending[0], self, self._batch_room)
            pending.clear()
