"""The listening socket, the accept loop and shutdown.

``ChatServer`` is usable in-process (tests, embedding)::

    with ChatServer(ServerConfig(port=0)) as server:
        host, port = server.address
        ...

and ``serve(config)`` runs it as a program: logs ``listening on HOST:PORT``,
then waits for SIGINT/SIGTERM and shuts down cleanly with exit code 0.
Like ``socketserver``, the hooks a subclass might want are small methods:
``make_session`` and ``refuse``.  The server owns the choices a session
must not make: it builds the fan-out strategy once from the config
(:func:`server.fanout.make_fanout`) and gives every session a
:class:`~server.session.SessionContext` instead of itself.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, cast

from server import protocol
from server.accounts import AccountsError, AccountsFile
from server.backplane.errors import BackplaneError
from server.config import ServerConfig
from server.fanout import Fanout, make_fanout
from server.hub import Hub
from server.limits import raise_open_file_limit
from server.login import Login
from server.memory import Trimmer, limit_arenas
from server.session import Session, SessionContext
from server.tls import PLAINTEXT_CHAT_ANSWER, PLAINTEXT_HTTP_ANSWER, TlsSocket, server_context
from server.wsframes import UNAVAILABLE_RESPONSE

if TYPE_CHECKING:
    import ssl

    from server.backplane.hub import ClusterHub

__all__ = ["ChatServer", "StartError", "format_address", "raise_open_file_limit", "serve", "set_keepalive"]

log = logging.getLogger(__name__)
#: The "listening on HOST:PORT" line is what scripts wait for, so it is shown
#: at any --log-level: this logger's own level lets it through.
startup_log = logging.getLogger("server.startup")
startup_log.setLevel(logging.INFO)

#: Unanswered TCP keepalive probes before a silent peer counts as gone.
KEEPALIVE_PROBES = 4

#: Pause after a failed accept (EMFILE and friends) before trying again:
#: long enough not to spin on a full descriptor table, short enough that
#: clients barely notice once descriptors are free again.
ACCEPT_RETRY_SECONDS = 0.05

#: The reaper wakes at least this often, so a registration deadline or idle
#: timeout is enforced within about a second of passing.
REAP_INTERVAL_SECONDS = 1.0

#: How long shutdown waits for reader threads to finish their cleanup.
SHUTDOWN_GRACE_SECONDS = 1.5
#: What every client is told, and the log says, when the server stops.
SHUTDOWN_REASON = "server shutting down"


#: Builds the session for a new connection on one listener.
MakeSession = Callable[[socket.socket, str], Session]
#: Turns a connection away with a reason ("server full").
Refuse = Callable[[socket.socket, str], None]


class StartError(Exception):
    """A file the server needs at start does not load (TLS certificate or
    key, accounts): the one line ``serve`` logs before exiting 2."""


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ListenError(OSError):
    """A port the server cannot listen on: which address, for which option, and why."""

    def __init__(self, exc: OSError, address: tuple[str, int], option: str) -> None:
        super().__init__(exc.errno, exc.strerror)
        self.address = address
        self.option = option

    def __str__(self) -> str:
        return f"cannot listen on {format_address(*self.address)} ({self.option}): {self.strerror}"


def set_keepalive(sock: socket.socket, idle_seconds: int) -> None:
    """TCP keepalive: probe after ``idle_seconds`` of silence, then every
    quarter of that, and give up after 4 unanswered probes (so a vanished
    peer is dropped after about twice ``idle_seconds``)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle_seconds)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, idle_seconds // 4))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)


def load_tls(config: ServerConfig) -> ssl.SSLContext | None:
    """The TLS ports' context from ``--tls-cert``/``--tls-key`` (None: no TLS)."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    try:
        return server_context(config.tls_cert, config.tls_key)
    except OSError as exc:  # ssl.SSLError is one too
        detail = exc.strerror if exc.strerror and not getattr(exc, "reason", None) else str(exc)
        files = f"{config.tls_cert} / {config.tls_key}"
        raise StartError(f"cannot load the TLS certificate / key {files}: {detail}") from None


def load_login(config: ServerConfig) -> Login | None:
    """The login policy with ``--accounts`` (``server.login``; None: no passwords)."""
    if config.accounts is None:
        return None
    try:
        accounts = AccountsFile(config.accounts)
    except AccountsError as exc:
        raise StartError(str(exc)) from None
    if not len(accounts):
        log.warning("the accounts file %s has no account yet", config.accounts)
    return Login(accounts, config.accounts_required)


class ChatServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        #: The cluster's hub with --backplane (None: this process is the whole room).
        self.cluster: ClusterHub | None = None
        if config.backplane is not None:
            self.cluster = cluster_hub(config)
        self.hub: Hub = (
            Hub(config.announce_limit, config.max_rooms, config.max_rooms_per_client)
            if self.cluster is None
            else self.cluster
        )
        #: The room of WebSocket clients speaking the shootout protocol
        #: (``/ws-shootout``): no names shown, so no join or leave notices.
        self.shootout_hub = Hub(announce_limit=0)
        self._sessions: set[Session] = set()
        self._threads: dict[Session, threading.Thread] = {}
        self._lock = threading.Lock()
        self._listeners: list[socket.socket] = []
        self._accept_threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.address: tuple[str, int] = (config.host, config.port)
        #: Where WebSocket clients connect (``--ws-port``); None when off.
        self.ws_address: tuple[str, int] | None = None
        #: The TLS ports (``--tls-port``, ``--wss-port``); None when off.
        self.tls_address: tuple[str, int] | None = None
        self.wss_address: tuple[str, int] | None = None
        #: The TLS settings of both TLS ports, loaded by ``start``.
        self.tls_context: ssl.SSLContext | None = None
        #: The login policy with ``--accounts``, loaded by ``start``.
        self.login: Login | None = None
        #: The fan-out strategy (``--fanout``), built once by ``start``.
        self.fanout: Fanout | None = None
        self._context: SessionContext | None = None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Bind, listen and start accepting in a background thread."""
        threading.stack_size(self.config.thread_stack_bytes)
        self.tls_context = load_tls(self.config)
        self.fanout = make_fanout(self.config.fanout, self.config.send_queue_bytes)
        self.hub.fan_out = self.fanout.fan_out
        self.shootout_hub.fan_out = self.fanout.fan_out
        self.login = load_login(self.config)
        self._context = SessionContext(self.hub, self.config, self.fanout, self.forget, self.login)
        if self.cluster is not None:
            self.cluster.start()  # joins before listening: BackplaneError if Redis is unreachable
        try:
            self._open_listeners()
        except OSError:
            self._stopping.set()  # no half-started server
            self._stop_accepting(SHUTDOWN_GRACE_SECONDS)
            self.fanout.stop()
            raise
        threading.Thread(target=self._reap, name="reaper", daemon=True).start()

    def _open_listeners(self) -> None:
        """Every port the config asks for; :class:`ListenError` names the one that failed."""
        config = self.config
        if not config.tls_only:
            self.address = self._listen(config.port, "--port", self.make_session, self.refuse)
        self.tls_address = self._listen_extra(config.tls_port, "--tls-port", self.make_tls_session, self.refuse_tls)
        self.ws_address = self._listen_extra(config.ws_port, "--ws-port", self.make_ws_session, self.refuse_ws)
        self.wss_address = self._listen_extra(config.wss_port, "--wss-port", self.make_wss_session, self.refuse_tls)
        if config.tls_only and self.tls_address is not None:
            self.address = self.tls_address

    def _listen_extra(self, port: int | None, option: str, make: MakeSession, refuse: Refuse) -> tuple[str, int] | None:
        """Listen on an optional port (None: off)."""
        return None if port is None else self._listen(port, option, make, refuse)

    def _listen(self, port: int, option: str, make: MakeSession, refuse: Refuse) -> tuple[str, int]:
        """Bind ``port`` (the value of ``option``) and accept on it in a thread
        of its own; the address.  :class:`ListenError` names the port that failed."""
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        try:
            listener = socket.create_server(
                (self.config.host, port), family=family, backlog=self.config.backlog, reuse_port=self.config.reuse_port
            )
        except OSError as exc:
            raise ListenError(exc, (self.config.host, port), option) from exc
        self._listeners.append(listener)
        thread = threading.Thread(
            target=self._accept_loop, args=(listener, make, refuse), name=f"accept-{port}", daemon=True
        )
        self._accept_threads.append(thread)
        thread.start()
        host, bound = listener.getsockname()[:2]
        return (host, bound)

    def shutdown(self, grace: float = SHUTDOWN_GRACE_SECONDS, close_connections: bool = True) -> None:
        """Stop accepting, tell every client, close every socket.  Returns
        within about ``grace`` seconds whatever the clients do.

        The goodbye lines go out first, to everyone, without waking a single
        reader thread; only then are the sockets shut down.  Waking 1,000
        readers one by one while still sending would make every send wait for
        the GIL behind a reader's cleanup.  A process that is about to exit
        passes ``close_connections=False``: its sockets close with it, and the
        reader threads need not run at all."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.hub.closing = True
        self.shootout_hub.closing = True
        self._stop_accepting(grace)
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.disconnect(SHUTDOWN_REASON, wake_reader=False)
        if self.cluster is not None:
            self.cluster.stop(SHUTDOWN_REASON)
        if self.fanout is not None:
            self.fanout.drain(grace)
        if close_connections:
            self._close_sessions(sessions, grace)
        else:  # no reader thread runs again to log its leave
            for session in sessions:
                if session.name is not None:
                    log.info("%s left (%s)", session.name, SHUTDOWN_REASON)
        log.info("server stopped")

    def _stop_accepting(self, grace: float) -> None:
        for listener in self._listeners:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
            except OSError:
                pass
            listener.close()
        for thread in self._accept_threads:
            thread.join(grace)

    def _close_sessions(self, sessions: list[Session], grace: float) -> None:
        """Wake every reader so it cleans up; wait up to ``grace`` for them."""
        for session in sessions:
            session.wake()
        deadline = time.monotonic() + grace
        for session in sessions:
            thread = self._threads.get(session)
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = len(self._sessions)
        if left:
            log.warning("%d sessions still closing after %.1fs; exiting anyway", left, grace)
        if self.fanout is not None:
            self.fanout.drain(grace)
            self.fanout.stop()

    def __enter__(self) -> ChatServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    # -- accepting ------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket, make: MakeSession, refuse: Refuse) -> None:
        while not self._stopping.is_set():
            try:
                sock, addr = listener.accept()
            except OSError as exc:
                if self._stopping.is_set():
                    return
                # EMFILE and friends: log, back off a little, keep serving.
                log.error("accept failed: %s", exc)
                time.sleep(ACCEPT_RETRY_SECONDS)
                continue
            try:
                self._admit(sock, format_address(addr[0], addr[1]), make, refuse)
            except Exception:
                log.exception("could not start a session for %s", addr)
                sock.close()

    def _reap(self) -> None:
        """Disconnect connections that did not register in time, and (with
        ``--idle-timeout``) registered clients that went silent; give memory
        back after a storm (``server.memory.Trimmer``).  One thread
        for all, instead of socket timeouts: a timeout on a socket also makes
        every send on it wait for room, and no writer may ever wait."""
        idle_limit = self.config.idle_timeout
        intervals = [REAP_INTERVAL_SECONDS, self.config.registration_timeout / 4]
        if idle_limit > 0:
            intervals.append(idle_limit / 4)
        trimmer = Trimmer()
        while not self._stopping.wait(min(intervals)):
            now = time.monotonic()
            trimmer.tick(now)
            with self._lock:
                sessions = list(self._sessions)
            for session in sessions:
                if session.name is None:
                    if now > session.registration_deadline:
                        session.disconnect("registration timeout")
                elif idle_limit > 0 and now - session.last_activity > idle_limit:
                    log.info("%s idle for %.0fs, disconnecting", session.name, now - session.last_activity)
                    session.disconnect("idle timeout")
                else:
                    session.keepalive(now)

    def _admit(self, sock: socket.socket, peer: str, make: MakeSession, refuse: Refuse) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.config.keepalive > 0:
            set_keepalive(sock, self.config.keepalive)
        with self._lock:
            full = len(self._sessions) >= self.config.max_clients
            if not full:
                session = make(sock, peer)
                self._sessions.add(session)
        if full:
            refuse(sock, "server full")
            return
        thread = threading.Thread(target=session.run, name=f"reader-{peer}", daemon=True)
        with self._lock:
            self._threads[session] = thread
        thread.start()

    def make_session(self, sock: socket.socket, peer: str) -> Session:
        """Hook: build the session object for a new connection."""
        assert self._context is not None, "start() builds the sessions' context"
        return Session(self._context, sock, peer)

    def make_ws_session(self, sock: socket.socket, peer: str) -> Session:
        """Hook: build the session object for a new WebSocket connection."""
        assert self._context is not None, "start() builds the sessions' context"
        # Imported here: wsproto and h11 cost a TCP-only server ~5 MiB of RSS.
        from server.websocket import WebSocketSession

        return WebSocketSession(self._context, sock, peer, self.shootout_hub)

    def make_tls_session(self, sock: socket.socket, peer: str) -> Session:
        """Hook: the session of a chat client on the TLS port (``server.tls``)."""
        assert self._context is not None and self.tls_context is not None, "start() builds both"
        tls = TlsSocket(sock, self.tls_context, peer, plaintext_answer=PLAINTEXT_CHAT_ANSWER)
        # TlsSocket has the methods a session and its outbox use (see WsSocket).
        return Session(self._context, cast(socket.socket, tls), peer)

    def make_wss_session(self, sock: socket.socket, peer: str) -> Session:
        """Hook: the session of a WebSocket client on the TLS port (https, wss)."""
        assert self.tls_context is not None, "start() loads it"
        tls = TlsSocket(sock, self.tls_context, peer, plaintext_answer=PLAINTEXT_HTTP_ANSWER)
        return self.make_ws_session(cast(socket.socket, tls), peer)

    def refuse(self, sock: socket.socket, reason: str) -> None:
        """Hook: turn a connection away with one line."""
        self._turn_away(sock, reason, protocol.encode_disconnect(reason))

    def refuse_ws(self, sock: socket.socket, reason: str) -> None:
        """Hook: turn a WebSocket connection away (HTTP 503, before its handshake)."""
        self._turn_away(sock, reason, UNAVAILABLE_RESPONSE)

    def refuse_tls(self, sock: socket.socket, reason: str) -> None:
        """Hook: turn a TLS connection away (closed before its handshake: no
        plaintext line would be readable to it)."""
        self._turn_away(sock, reason, b"")

    def _turn_away(self, sock: socket.socket, reason: str, answer: bytes) -> None:
        log.warning("refused %s: %s", sock.getpeername() if sock.fileno() >= 0 else "?", reason)
        try:
            if answer:
                sock.send(answer, socket.MSG_DONTWAIT)
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def forget(self, session: Session) -> None:
        """Called by a session's reader thread as its very last act."""
        with self._lock:
            self._sessions.discard(session)
            self._threads.pop(session, None)

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self._sessions)


def cluster_hub(config: ServerConfig) -> ClusterHub:
    """The hub of a cluster node (--backplane).  Redis is imported here, only
    for a cluster: it is an extra (``pip install 'chatbench[cluster]'``)."""
    try:
        from server.backplane.hub import ClusterHub
    except ModuleNotFoundError as exc:
        raise BackplaneError(
            f"--backplane needs the Python package {exc.name!r}, which is not installed: "
            "pip install 'chatbench[cluster]'"
        ) from exc
    assert config.backplane is not None
    return ClusterHub(config.backplane, config.announce_limit, config.max_rooms, config.max_rooms_per_client)


def serve(config: ServerConfig) -> int:
    """Run until SIGINT or SIGTERM; the program's exit code."""
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise_open_file_limit()
    limit_arenas()  # before any thread starts (server.memory)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    # Before listening: a SIGTERM right after "listening on" is a clean stop too.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server = ChatServer(config)
        server.start()
    except (ListenError, StartError) as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        log.error("cannot start: %s", exc.strerror or exc)
        return 2
    except BackplaneError as exc:
        log.error("cannot join the cluster: %s", exc)
        return 2
    startup_log.info("listening on %s", format_address(*server.address))
    for label, address in (("tls", server.tls_address), ("websocket", server.ws_address), ("wss", server.wss_address)):
        if address is not None:
            startup_log.info("%s on %s", label, format_address(*address))
    startup_log.info("%s", config.options_line())
    while not stop.wait(0.5):
        pass
    # Every client gets its goodbye line; the sockets close as the process exits.
    server.shutdown(close_connections=False)
    return 0
