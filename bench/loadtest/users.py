"""Locust users that speak the chat protocol over raw TCP (or, with
``--chat-protocol``, MQTT, Redis pub/sub, NATS or IRC through the harness's
adapters: :mod:`bench.wire`).

:class:`ChatUser` is the abstract base: it connects, registers a unique name,
hands its connection to the process's receiving loop (:mod:`bench.loadtest.rxloop`),
which measures every fan-out delivery, and offers ``send_probe()`` / ``say()`` /
``send_line()`` to tasks.  :class:`ChatClientUser` is the
concrete user the locustfile exposes: it sends one probe per scheduled slot
(``--chat-rate`` per second) and measures what everybody else sends.

What Locust's statistics, charts and CSV show (the ``FANOUT`` rows are added
a round of reads at a time, :mod:`bench.loadtest.locuststats`; the others are
request events):

``FANOUT broadcast``   one per probe delivered to this user; response time is
                       the kernel's receive stamp minus the *intended* send
                       time the sender embedded (ms), so a stalled sender or
                       server shows up as latency (no coordinated omission),
                       and a busy worker reading late does not; a sender on
                       another clock (another machine, a time namespace) is
                       corrected by the two clocks' offsets.
``FANOUT broadcast (clock unmeasured)``  a probe counted, not timed: its
                       sender's clock offset is not known (yet), or its error
                       bound is over ``--chat-max-clock-error``.
``SEND chat``          one per line sent; response time is from the intended
                       send instant until the line was handed to the kernel.
``CONNECT register``   connect + registration time; connection, registration
                       and lost-connection errors are failures of this name.
``RECEIVE unrecognised line``  failure: a server line the protocol module
                       does not know (the connection stays up).

Registration goes through the harness's one blocking client
(:mod:`bench.wire.client`, driving the adapter's state machine); what a user
receives goes through the swarm's one receive path (:mod:`bench.loadtest.receive`:
kernel receive stamps, the adapter's deliveries, the recorder, integrity per
sender); the probe text is :mod:`bench.measure.probe`'s.  Sockets are plain
:mod:`socket` objects: Locust monkey-patches the process with gevent, so they
are cooperative.  Nothing here patches anything itself.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent
from locust import User, task

from bench.loadtest import finalcsv
from bench.loadtest.clocks import DEFAULT_MAX_CLOCK_ERROR_MS
from bench.loadtest.hdr import RECORDER
from bench.loadtest.options import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_PAYLOAD,
    DEFAULT_PHASE,
    DEFAULT_PROTOCOL,
    DEFAULT_RATE,
    add_arguments,
    option,
)
from bench.loadtest.options import access as user_access
from bench.loadtest.pacer import pacer, send_rest
from bench.loadtest.phases import Phases, process_phases
from bench.loadtest.receive import receiving
from bench.loadtest.rxloop import Member, receive_loop
from bench.loadtest.support import (
    CONNECT_NAME,
    CONNECT_TYPE,
    DEFAULT_HOST,
    FANOUT_NAME,
    FANOUT_TYPE,
    IDENTITY,
    RECEIVE_LINE_LIMIT,
    RECEIVE_NAME,
    RECEIVE_TYPE,
    SEND_NAME,
    SEND_TYPE,
    parse_host,
)
from bench.measure.probe import CorruptProbe, encode_probe, make_payload
from bench.wire.client import PLAIN, Access, RegistrationRefused, WireClient
from bench.wire.credentials import Credentials
from bench.wire.lines import BlockLineDecoder
from server import protocol

log = logging.getLogger("chatbench.locust")

#: A registration that keeps being refused (names taken) gives up after this.
MAX_NAME_ATTEMPTS = 5
#: Users the web UI's form offers when -u is not given: enough that every
#: message fans out to several receivers (one user alone receives nothing).
WEB_UI_USERS = 10
#: Seconds between reconnection attempts of a user that lost its connection.
RECONNECT_INTERVAL = 1.0
#: Locust's wait between tasks ends this long before the next send is due (a
#: gevent timer wakes up to a millisecond late); the pacer sends it on time.
PACER_LEAD_S = 0.002


#: Protocols whose servers send this project's server lines (notices, errors),
#: which a user's :meth:`ChatUser.on_server_event` hook gets.
SERVER_LINE_PROTOCOLS = frozenset({"chat", "ws"})


class ChatConnectionError(Exception):
    """Connecting, registering, or staying connected failed; says why."""


# --------------------------------------------------------------------------
# One connection
# --------------------------------------------------------------------------


class ChatConnection:
    """A registered connection: the harness's one blocking client
    (:class:`bench.wire.client.WireClient`, cooperative under gevent) and
    the name and probe sender id it registered with."""

    def __init__(self, client: WireClient, sender_id: int, publisher: WireClient | None = None) -> None:
        self.client = client
        self.sock = client.sock
        self.decoder = client.decoder
        self.adapter = client.adapter
        self.name = client.name
        self.sender_id = sender_id
        #: The connection messages are sent on, where the protocol cannot send
        #: on a receiving one (Redis: a subscribed connection cannot publish).
        self.publisher = publisher
        self.send_sock = publisher.sock if publisher is not None else client.sock
        #: Lines that arrived together with the welcome, for the receiver.
        self.backlog: list[bytes] = client.take_lines()
        self.closed = False

    @classmethod
    def open(
        cls,
        address: tuple[str, int],
        timeout: float,
        identities: Callable[[], tuple[str, int]],
        attempts: int,
        protocol_name: str = DEFAULT_PROTOCOL,
        access: Access = PLAIN,
    ) -> ChatConnection:
        """Connect (``access``: over TLS, logged in) and register with a fresh
        name from ``identities``; on refusal (name taken) try another, up to
        ``attempts`` names, all within ``timeout`` seconds.  ``protocol_name``:
        what the host speaks (:data:`bench.wire.PROTOCOLS`)."""
        deadline = time.monotonic() + timeout
        decoder = BlockLineDecoder(RECEIVE_LINE_LIMIT) if protocol_name == DEFAULT_PROTOCOL else None
        client = WireClient.open(address, protocol_name, timeout, decoder=decoder, tls=access.tls)
        # Kernel receive stamps from the start: the kernel switches stamping
        # on from a work queue, so the first segments after this may lack one.
        receiving().reader.enable(client.sock)
        last = ""
        try:
            for _ in range(attempts):
                name, sender_id = identities()
                try:
                    client.register(name, deadline, credentials=access.login(sender_id))
                except RegistrationRefused as exc:
                    log.debug("%s", exc)
                    last = str(exc)
                    continue
                publisher = open_publisher(client, address, timeout, deadline, access.login(sender_id), access)
                return cls(client, sender_id, publisher)
        except BaseException:
            client.close()
            raise
        client.close()
        raise ChatConnectionError(f"no name accepted after {attempts} attempts (the last: {last})")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.client.close()
        if self.publisher is not None:
            self.publisher.close()


def open_publisher(
    client: WireClient,
    address: tuple[str, int],
    timeout: float,
    deadline: float,
    login: Credentials | None = None,
    access: Access = PLAIN,
) -> WireClient | None:
    """A second, sending-only connection for ``client``'s user where its
    protocol cannot send on a receiving connection (Redis), else None."""
    if client.adapter.senders_receive:
        return None
    publisher = WireClient.open(address, client.adapter.name, timeout, tls=access.tls)
    try:
        publisher.register(client.name, deadline, sender_only=True, credentials=login)
    except BaseException:
        publisher.close()
        raise
    return publisher


# --------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------


class ChatUser(User):
    """Abstract raw-TCP chat user.

    Subclasses add ``@task`` methods that call :meth:`send_probe` (measured
    messages), :meth:`say` (plain chat) or :meth:`send_line` (commands).
    Pacing: by default each user sends on an open-loop schedule of ``rate``
    messages per second (``--chat-rate``; set the class attribute to
    override) at a phase spread over the period (``--chat-phase``,
    :mod:`bench.loadtest.phases`), and a probe carries its *scheduled* time.
    A subclass may set its own ``wait_time`` (``constant_throughput(2)``,
    ``between(1, 3)``...); probes then carry the time they were sent.
    Override :meth:`on_chat` / :meth:`on_server_event`
    to react to non-probe traffic.
    """

    abstract = True
    host = DEFAULT_HOST
    #: Messages per second; ``None`` takes ``--chat-rate``.
    rate: float | None = None
    #: Payload bytes; ``None`` takes ``--chat-payload``.
    payload_size: int | None = None
    #: The wire protocol (``bench.wire``) whatever ``--chat-protocol`` says
    #: (``ws`` for :class:`bench.loadtest.wsusers.WebSocketChatUser`); None: the option's.
    wire_protocol: str | None = None

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.conn: ChatConnection | None = None
        self.name = ""
        self.sender_id = 0
        self.seq = 0
        self._member: Member | None = None
        self._period_ns = 0
        self._next_ns = 0
        self._retry_at = 0.0
        self._rate = float(self.rate if self.rate is not None else option(environment, "chat_rate", DEFAULT_RATE))
        size = self.payload_size
        self._payload_size = int(size if size is not None else option(environment, "chat_payload", DEFAULT_PAYLOAD))
        self._timeout = float(option(environment, "chat_connect_timeout", DEFAULT_CONNECT_TIMEOUT))
        self._protocol = self.wire_protocol or str(option(environment, "chat_protocol", DEFAULT_PROTOCOL))
        self._access = user_access(environment)
        self._drainer: gevent.Greenlet | None = None
        self._paced = type(self).wait_time is ChatUser.wait_time
        if self._rate > 0:
            self._period_ns = int(1e9 / self._rate)

    # -- lifecycle ------------------------------------------------------------

    def on_start(self) -> None:
        self.connect()

    def on_stop(self) -> None:
        self.disconnect()

    def connect(self) -> bool:
        """Connect and register; on failure fire a CONNECT failure and
        return False (tasks retry every RECONNECT_INTERVAL seconds)."""
        self.disconnect()
        start = time.perf_counter()
        conn: ChatConnection | None = None
        try:
            address = self.target_address()
            conn = ChatConnection.open(
                address, self._timeout, IDENTITY.next, MAX_NAME_ATTEMPTS, self._protocol, self._access
            )
            conn.sock.settimeout(None)
            conn.send_sock.settimeout(None)
        except Exception as exc:
            if conn is not None:
                conn.close()
            self._retry_at = time.monotonic() + RECONNECT_INTERVAL
            self._fire(CONNECT_TYPE, CONNECT_NAME, (time.perf_counter() - start) * 1000.0, 0, exc)
            return False
        self._fire(CONNECT_TYPE, CONNECT_NAME, (time.perf_counter() - start) * 1000.0, 0)
        self.conn = conn
        self.name = conn.name
        self.sender_id = conn.sender_id
        self.seq = 0
        if self._period_ns:
            self._next_ns = user_phases(self.environment).first_send(self._period_ns, time.monotonic_ns())
        rx = receiving()
        rx.labels.max_error_ns = int(
            float(option(self.environment, "chat_max_clock_error", DEFAULT_MAX_CLOCK_ERROR_MS)) * 1e6
        )
        backlog, conn.backlog = conn.backlog, []
        self._member = receive_loop().add(self, conn, conn.adapter, backlog)
        if conn.publisher is not None:
            self._drainer = gevent.spawn(self._drain_publisher, conn)
        return True

    def target_address(self) -> tuple[str, int]:
        """The server's address, from ``--host`` (hook)."""
        return parse_host(self.host)

    def disconnect(self) -> None:
        conn, self.conn = self.conn, None
        member, self._member = self._member, None
        drainer, self._drainer = self._drainer, None
        if member is not None:
            receive_loop().remove(member)
        if drainer is not None and drainer is not gevent.getcurrent():
            drainer.kill(block=False)
        if conn is not None:
            conn.close()

    def ensure_connected(self) -> bool:
        if self.conn is not None:
            return True
        if time.monotonic() < self._retry_at:
            return False
        return self.connect()

    # -- pacing ---------------------------------------------------------------

    def wait_time(self) -> float:
        """Seconds until just before the next scheduled send (open loop: a
        late user sends at once and the lateness counts as latency).  The
        task then hands the probe to the pacer, which sends it on time
        (:mod:`bench.loadtest.pacer`): Locust's own wait, a gevent timer, may
        wake a millisecond late."""
        if self.conn is None:
            return max(0.0, self._retry_at - time.monotonic())
        if not self._period_ns:
            return 1.0
        return max(0.0, (self._next_ns - time.monotonic_ns()) / 1e9 - PACER_LEAD_S)

    # -- sending --------------------------------------------------------------

    def say(self, text: str) -> bool:
        """Say ``text`` in the chat (a leading ``/`` is escaped, so it is
        never a command); fires SEND.  False if not connected."""
        conn = self.conn
        if conn is None:
            return False
        return self.send_bytes(conn.adapter.encode_message(self.name, text))

    def send_line(self, line: str) -> bool:
        """Send one raw protocol line, e.g. a command such as ``/who``."""
        return self.send_bytes(protocol.encode_line(line))

    def send_bytes(self, data: bytes, intended_ns: int | None = None) -> bool:
        """Send encoded protocol bytes; fires SEND with the time from
        ``intended_ns`` (default: now) until the kernel took them."""
        conn = self.conn
        if conn is None:
            return False
        start = time.monotonic_ns() if intended_ns is None else intended_ns
        try:
            conn.send_sock.sendall(data)
        except OSError as exc:
            self._lost(conn, exc)
            return False
        self._fire(SEND_TYPE, SEND_NAME, (time.monotonic_ns() - start) / 1e6, len(data))
        return True

    def send_probe(self) -> bool:
        """Send the next measured message (reconnecting first if needed).
        On the user's own schedule it goes out at its intended time through
        the process's pacer (:mod:`bench.loadtest.pacer`), as the swarm's do."""
        if not self.ensure_connected():
            return False
        paced = self._paced
        if paced:
            if not self._period_ns:
                return False
            intended = self._next_ns
            self._next_ns += self._period_ns
        else:
            intended = time.monotonic_ns()
        seq = self.seq
        self.seq += 1
        conn = self.conn
        if conn is None:
            return False
        text = encode_probe(self.sender_id, seq, intended, make_payload(self._payload_size, self.sender_id, seq))
        data = conn.adapter.encode_message(self.name, text)
        if not paced:
            return self.send_bytes(data, intended)
        _, rest, error = pacer().send_at(intended, conn.send_sock, data)
        try:
            if error is not None:
                raise error
            if rest:  # the kernel took only part: the rest cooperatively
                send_rest(conn.send_sock, rest)
        except OSError as exc:
            self._lost(conn, exc)
            return False
        self._fire(SEND_TYPE, SEND_NAME, (time.monotonic_ns() - intended) / 1e6, len(data))
        return True

    # -- receiving ------------------------------------------------------------

    def on_chat(self, sender: str, text: str) -> None:
        """A chat line that is not a probe (hook; ignored by default)."""

    def on_server_event(self, event: protocol.ServerEvent) -> None:
        """Any other server line (joins, leaves, notices...; hook)."""

    # -- what the process's receive loop (bench.loadtest.rxloop) tells the user --

    def received_others(self, conn: ChatConnection, texts: list[str]) -> None:
        """Received lines that are not deliveries, to the hooks: chat that is
        not a probe to :meth:`on_chat`, our server's lines to
        :meth:`on_server_event` (one it does not know is a RECEIVE failure)."""
        server_lines = conn.adapter.name in SERVER_LINE_PROTOCOLS
        for text in texts:
            split = protocol.split_message(text)
            if split is not None:
                self.on_chat(*split)
                continue
            if not server_lines:
                continue
            try:
                event = protocol.parse_server_line(text)
            except protocol.ProtocolError as exc:
                self._fire(RECEIVE_TYPE, RECEIVE_NAME, 0.0, len(text), exc)
                continue
            self.on_server_event(event)

    def corrupted(self, count: int) -> None:
        """Damaged probes: a FANOUT failure each."""
        for _ in range(count):
            self._fire(FANOUT_TYPE, FANOUT_NAME, 0.0, 0, CorruptProbe("a corrupted probe"))

    def lost(self, conn: ChatConnection, exc: Exception) -> None:
        """The loop stopped reading ``conn``: it ended or failed."""
        self._lost(conn, exc)

    def _drain_publisher(self, conn: ChatConnection) -> None:
        """Read the sending-only connection's replies (Redis: a count per
        ``PUBLISH``), so they never pile up; an error reply ends it."""
        assert conn.publisher is not None
        sock, decoder = conn.publisher.sock, conn.publisher.decoder
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    raise ChatConnectionError("server closed the sending connection")
                got = conn.adapter.deliveries(decoder.feed_block(data))
                if got.ended is not None:
                    raise ChatConnectionError(f"disconnected by server: {got.ended}")
        except gevent.GreenletExit:
            raise
        except Exception as exc:
            self._lost(conn, exc)

    def _lost(self, conn: ChatConnection, exc: Exception) -> None:
        """A connection failed while in use: one CONNECT failure, then the
        user reconnects (as a new name) from its next task."""
        if conn.closed or conn is not self.conn:
            return  # we closed it ourselves
        self._fire(CONNECT_TYPE, CONNECT_NAME, 0.0, 0, exc)
        self._retry_at = time.monotonic() + RECONNECT_INTERVAL
        self.disconnect()

    def _fire(
        self, request_type: str, name: str, response_time: float, length: int, exc: Exception | None = None
    ) -> None:
        self.environment.events.request.fire(
            request_type=request_type,
            name=name,
            response_time=response_time,
            response_length=length,
            exception=exc,
            context={},
        )


def user_phases(environment: Any) -> Phases:
    """The process's phases for ``--chat-phase``; a worker's grid is shifted by its index."""
    runner = getattr(environment, "runner", None)
    index = getattr(runner, "worker_index", 0) if runner is not None else 0
    return process_phases(str(option(environment, "chat_phase", DEFAULT_PHASE)), int(index or 0))


class ChatClientUser(ChatUser):
    """Connects, sends measured messages at ``--chat-rate`` per second and
    measures every message the others send."""

    @task
    def chat(self) -> None:
        self.send_probe()


# --------------------------------------------------------------------------
# Wiring into Locust (called once by the locustfile)
# --------------------------------------------------------------------------

_installed = False
#: How ``--host`` is checked at start-up (``install``'s ``host_parser``).
_host_parser: Callable[[str | None], tuple[str, int]] = parse_host


def install(events: Any, host_parser: Callable[[str | None], tuple[str, int]] = parse_host) -> None:
    """Register the ``--chat-*`` options, the exact fan-out percentiles and
    the step-load toggle on Locust's event hooks; ``host_parser`` checks
    ``--host`` (the WebSocket locustfile passes its own).  Idempotent."""
    global _installed, _host_parser
    if _installed:
        return
    _installed = True
    _host_parser = host_parser
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(_on_init)


def step_load_requested(options: Any) -> bool:
    return bool(getattr(options, "chat_step_load", False))


def _on_init(environment: Any, runner: Any = None, web_ui: Any = None, **_kwargs: Any) -> None:
    RECORDER.attach(environment, runner)
    finalcsv.install(environment)
    options = environment.parsed_options
    if web_ui is not None and options is not None and options.num_users is None:
        # Locust's form would offer 1 user, and one user alone receives no
        # fan-out at all (the server relays to everyone but the sender).
        options.num_users = WEB_UI_USERS
        if getattr(options, "spawn_rate", None) is None:
            options.spawn_rate = float(WEB_UI_USERS)
    options = environment.parsed_options
    if options is None:
        return
    try:
        _host_parser(environment.host or None)
    except ValueError as exc:
        log.error("%s", exc)
        sys.exit(2)
    if step_load_requested(options) and options.num_users is None and getattr(options, "headless", False):
        log.error("--chat-step-load needs -u (the largest number of users to step up to)")
        sys.exit(2)
    step_load = step_load_requested(options)
    if not step_load and not getattr(options, "class_picker", False):
        # The step shape is in the locustfile so the web UI's class picker
        # can offer it, but plain runs use Locust's -u/-r unless asked.
        environment.shape_class = None
    elif step_load and environment.shape_class is not None:
        if getattr(options, "spawn_rate", None) is None:
            options.spawn_rate = float(options.chat_step_users)
        log.info(
            "step load: +%d users every %gs up to %s, spawn rate %g/s",
            options.chat_step_users,
            options.chat_step_time,
            options.num_users or options.chat_step_users,
            options.spawn_rate,
        )
