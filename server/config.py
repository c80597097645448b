"""Server settings: one frozen dataclass, built from the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Literal

from server.protocol import DEFAULT_MAX_LINE_BYTES

FanoutStrategy = Literal["queued", "threads", "direct"]
FANOUT_STRATEGIES: tuple[FanoutStrategy, ...] = ("queued", "threads", "direct")

#: Default cap on simultaneous clients.  10,000 fit on a 2-core, 24 GiB
#: machine with small thread stacks; beyond that the host's descriptor limit
#: and thread count become the problem, so the server says "server full".
DEFAULT_MAX_CLIENTS = 10_000

#: Bytes that may wait for one slow reader before it is cut off ("send queue
#: exceeded", as IRC servers say).  1 MiB holds ~20,000 typical chat lines,
#: plenty for a reader that is merely slow, and with 10,000 clients bounds the
#: worst case at ~10 GiB only if *every* client stops reading at once.
DEFAULT_SEND_QUEUE_BYTES = 1 << 20

#: Seconds a new connection has to send a valid username.  Long enough for a
#: person to type one, short enough that idle sockets cannot pile up.
DEFAULT_REGISTRATION_TIMEOUT = 60.0

#: Stack size for every client thread.  The default 8 MiB reserves 80 GiB of
#: address space for 10,000 threads; the threads here never recurse deeply,
#: and 256 KiB is comfortably above what CPython needs for this code.
DEFAULT_THREAD_STACK_BYTES = 256 * 1024


#: Flood control: sustained lines per second one client may send.  No person
#: types or pastes at 50 lines/s for long; a script that does is flooding.
#: Excess lines are delayed (IRC "fakelag"), so a fast sender is slowed to this
#: rate by TCP back-pressure; 0 turns flood control off (the harness does, to
#: measure fan-out rather than the limiter).
DEFAULT_RATE_LIMIT = 50.0

#: Lines a client may send at once before the limit applies (a pasted block),
#: and also how many further excess lines it may send before it is cut off
#: with "excess flood".
DEFAULT_RATE_BURST = 200

#: Seconds without a single line before a registered client is disconnected;
#: 0 = never (people idle in chats for hours; keepalive finds dead peers).
DEFAULT_IDLE_TIMEOUT = 0.0

#: TCP keepalive idle time in seconds, so half-open connections (a peer that
#: vanished without FIN or RST) are found and closed; 0 = off.
DEFAULT_KEEPALIVE = 60


#: listen() backlog: connections the kernel holds before ``accept``.  A
#: benchmark connects hundreds of clients at once; 1024 keeps them from being
#: dropped while the accept thread catches up (the kernel caps it at somaxconn).
DEFAULT_BACKLOG = 1024

#: Smallest accepted --max-line-bytes: below this not even a short command
#: and its argument fit in a line.
MIN_LINE_BYTES = 16


#: Join and leave notices go out only while the room has at most this many
#: members.  Each one is a line to every member, so N people arriving cost N^2
#: lines: with 10,000 clients that is 50 million notices nobody can read.
#: Big IRC channels mute joins the same way ("auditorium mode").
DEFAULT_ANNOUNCE_LIMIT = 1000


#: Rooms one client may be in at once, the default room included.  Every room
#: a client is in sends it that room's lines and notices, and costs a place in
#: the room's snapshot, rebuilt on each join; IRC networks allow 20 to 250
#: channels per user (CHANLIMIT).  50 fits a person in many rooms and the
#: harness's workloads (a few rooms per client, a personal room each).
DEFAULT_MAX_ROOMS_PER_CLIENT = 50

#: Rooms that may exist at once, the default room included.  A room costs a
#: dict entry and its snapshot (well under 1 KiB when small) and, in a
#: cluster, a Redis channel.  Twice the default client limit, so a personal
#: room for every one of 10,000 clients still leaves 10,000 for groups
#: (Centrifugo's benchmark: a personal channel and a 10-member group each).
DEFAULT_MAX_ROOMS = 20_000


#: URL schemes --backplane accepts (Redis over TCP, over TLS, over a Unix socket).
BACKPLANE_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_clients: int = DEFAULT_MAX_CLIENTS
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    send_queue_bytes: int = DEFAULT_SEND_QUEUE_BYTES
    registration_timeout: float = DEFAULT_REGISTRATION_TIMEOUT
    fanout: FanoutStrategy = "queued"
    rate_limit: float = DEFAULT_RATE_LIMIT
    rate_burst: int = DEFAULT_RATE_BURST
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    keepalive: int = DEFAULT_KEEPALIVE
    announce_limit: int = DEFAULT_ANNOUNCE_LIMIT
    max_rooms: int = DEFAULT_MAX_ROOMS
    max_rooms_per_client: int = DEFAULT_MAX_ROOMS_PER_CLIENT
    thread_stack_bytes: int = DEFAULT_THREAD_STACK_BYTES
    backlog: int = DEFAULT_BACKLOG
    log_level: str = "INFO"
    #: redis://HOST:PORT[/DB]: join a cluster over this Redis (None: one process).
    backplane: str | None = None
    #: SO_REUSEPORT: several server processes share one port (the kernel spreads connections).
    reuse_port: bool = False
    #: WebSocket clients' port (``server.websocket``); None = off, 0 = a free one.
    ws_port: int | None = None
    #: ``/ws`` speaks the websocket-shootout protocol instead of chat (as the
    #: shootout's reference servers do); ``/ws-shootout`` always does.
    ws_shootout: bool = False
    #: PEM certificate chain and private key for the TLS ports (``server.tls``).
    tls_cert: str | None = None
    tls_key: str | None = None
    #: The chat protocol over TLS on this port; None = off, 0 = a free one.
    tls_port: int | None = None
    #: WebSocket over TLS (``https://`` page, ``wss://``) on this port; None = off.
    wss_port: int | None = None
    #: No plaintext listeners: ``--port`` and ``--ws-port`` are not opened.
    tls_only: bool = False
    #: ``name:scrypt-hash`` lines (``server.accounts``); None = no passwords.
    accounts: str | None = None
    #: With accounts: names that have no account are refused (else they are guests).
    accounts_required: bool = False

    @property
    def tls(self) -> bool:
        """Whether any TLS port is on."""
        return self.tls_port is not None or self.wss_port is not None

    def options_line(self) -> str:
        """Every effective setting as ``options: name=value ...`` (the second
        line the server logs, at any level): what a benchmark records as the
        server's configuration."""
        return "options: " + " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.ws_port is not None and not 0 <= self.ws_port <= 65535:
            raise ValueError(f"websocket port must be 0..65535, got {self.ws_port}")
        if self.max_clients < 1:
            raise ValueError("max clients must be at least 1")
        if self.max_line_bytes < MIN_LINE_BYTES:
            raise ValueError(f"max line bytes must be at least {MIN_LINE_BYTES}")
        if self.send_queue_bytes < self.max_line_bytes:
            raise ValueError("send queue limit must be at least one line (max line bytes)")
        if self.registration_timeout <= 0:
            raise ValueError("registration timeout must be positive")
        if self.rate_limit < 0 or self.rate_burst < 1:
            raise ValueError("rate limit must be >= 0 (0 = off) and rate burst >= 1")
        if self.announce_limit < 0:
            raise ValueError("announce limit must be >= 0")
        if self.max_rooms < 1 or self.max_rooms_per_client < 1:
            raise ValueError("max rooms and max rooms per client must be at least 1 (the default room counts)")
        if self.idle_timeout < 0 or self.keepalive < 0:
            raise ValueError("idle timeout and keepalive must be >= 0 (0 = off)")
        if self.backplane is not None and not self.backplane.startswith(BACKPLANE_SCHEMES):
            raise ValueError(f"backplane must be a redis:// URL, got {self.backplane!r}")
        if self.fanout not in FANOUT_STRATEGIES:
            raise ValueError(f"fanout must be one of {', '.join(FANOUT_STRATEGIES)}")
        self._check_tls()
        if self.accounts_required and self.accounts is None:
            raise ValueError("--accounts-required needs --accounts FILE")

    def _check_tls(self) -> None:
        for name, port in (("tls", self.tls_port), ("wss", self.wss_port)):
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"{name} port must be 0..65535, got {port}")
        if self.tls and (self.tls_cert is None or self.tls_key is None):
            raise ValueError("--tls-port and --wss-port need --tls-cert and --tls-key")
        if not self.tls and (self.tls_cert is not None or self.tls_key is not None):
            raise ValueError("--tls-cert/--tls-key need --tls-port or --wss-port (where TLS is spoken)")
        if self.tls_only and self.tls_port is None:
            raise ValueError("--tls-only needs --tls-port (the chat port over TLS)")
        if self.tls_only and self.ws_port is not None:
            raise ValueError("--tls-only opens no plaintext port: use --wss-port instead of --ws-port")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default, except where there is none to show (an
    option that is off unless given, a flag)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    d = ServerConfig()
    parser = argparse.ArgumentParser(
        prog="chat-server",
        description="Multi-user chat server over TCP lines, and WebSocket with --ws-port "
        "(threads, one reader per client, bounded per-client send queues).",
        epilog="Connect with `chat-client --port PORT` or `nc HOST PORT`; with --ws-port, open "
        "http://HOST:WS_PORT/ in a browser. SIGINT/SIGTERM shut down cleanly. "
        "`chat-server passwd NAME --accounts FILE` adds an account (see --accounts).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--host", default=d.host, help="address to listen on")
    parser.add_argument("--port", type=int, default=d.port, help="TCP port; 0 picks a free one (logged on start)")
    parser.add_argument(
        "--max-clients", type=int, default=d.max_clients, help="connections beyond this get 'server full'"
    )
    _add_transport_options(parser)
    _add_security_options(parser)
    parser.add_argument("--max-line-bytes", type=int, default=d.max_line_bytes, help="longest accepted client line")
    _add_limit_options(parser, d)
    parser.add_argument(
        "--log-level", default=d.log_level, choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level"
    )
    return parser


def _add_transport_options(parser: argparse.ArgumentParser) -> None:
    """WebSocket, and a cluster's backplane."""
    parser.add_argument(
        "--ws-port",
        type=int,
        default=None,
        help="also accept WebSocket clients on this port (path /ws; GET / serves the chat page); "
        "0 picks a free one (logged as 'websocket on HOST:PORT'); off by default",
    )
    parser.add_argument(
        "--ws-shootout",
        action="store_true",
        help="/ws speaks the hashrocket websocket-shootout protocol (JSON broadcast/echo) instead of chat, "
        "as that project's servers do; /ws-shootout always speaks it",
    )
    parser.add_argument(
        "--backplane",
        metavar="redis://HOST:PORT[/DB]",
        help="join a cluster: every node publishes its room's lines to this Redis and delivers the others' "
        "(names unique cluster-wide, /who and /msg across nodes); default: one process on its own",
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="listen with SO_REUSEPORT, so several nodes on one machine share --port",
    )


def _add_security_options(parser: argparse.ArgumentParser) -> None:
    """TLS ports and accounts (``server.tls``, ``server.accounts``)."""
    group = parser.add_argument_group("TLS and accounts")
    group.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain for the TLS ports")
    group.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    group.add_argument(
        "--tls-port",
        type=int,
        default=None,
        help="also speak the chat protocol over TLS (1.2+) on this port; 0 picks a free one "
        "(logged as 'tls on HOST:PORT'); needs --tls-cert and --tls-key; off by default",
    )
    group.add_argument(
        "--wss-port",
        type=int,
        default=None,
        help="WebSocket over TLS on this port: the chat page at https://HOST:PORT/, wss://HOST:PORT/ws "
        "(logged as 'wss on HOST:PORT'); off by default",
    )
    group.add_argument(
        "--tls-only",
        action="store_true",
        help="open no plaintext port: --port and --ws-port are not listened on (needs --tls-port)",
    )
    group.add_argument(
        "--accounts",
        metavar="FILE",
        help="password file (`chat-server passwd NAME --accounts FILE` adds one): registration asks for a "
        "password, and a name in the file is taken only with its password; off by default",
    )
    group.add_argument(
        "--accounts-required",
        action="store_true",
        help="with --accounts: only names in the file may join (default: other names join as guests)",
    )


def _add_limit_options(parser: argparse.ArgumentParser, d: ServerConfig) -> None:
    """Per-client limits, fan-out and thread sizing."""
    parser.add_argument(
        "--send-queue-bytes",
        type=int,
        default=d.send_queue_bytes,
        help="bytes queued for one slow reader before it is disconnected ('send queue exceeded')",
    )
    parser.add_argument(
        "--registration-timeout", type=float, default=d.registration_timeout, help="seconds to send a username"
    )
    parser.add_argument(
        "--fanout",
        choices=FANOUT_STRATEGIES,
        default=d.fanout,
        help="queued: per-client bounded queues drained in batches by one flusher thread (epoll); "
        "threads: per-client writer threads; direct: the seed's blocking sends in the sender's thread",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=d.rate_limit,
        help="lines/s one client may send; excess lines are delayed, a persistent flooder is disconnected (0 = off)",
    )
    parser.add_argument(
        "--rate-burst", type=int, default=d.rate_burst, help="lines a client may send at once before the limit applies"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=d.idle_timeout,
        help="disconnect clients silent this many seconds (0 = off)",
    )
    parser.add_argument(
        "--keepalive", type=int, default=d.keepalive, help="TCP keepalive idle seconds, finds half-open peers (0 = off)"
    )
    parser.add_argument(
        "--announce-limit",
        type=int,
        default=d.announce_limit,
        help="send join/leave notices only while at most this many are online (they cost N^2 lines)",
    )
    parser.add_argument(
        "--max-rooms",
        type=int,
        default=d.max_rooms,
        help="rooms that may exist at once, the default room included (/join of a new room past it is refused)",
    )
    parser.add_argument(
        "--max-rooms-per-client",
        type=int,
        default=d.max_rooms_per_client,
        help="rooms one client may be in at once, the default room included",
    )
    parser.add_argument("--thread-stack-kib", type=int, default=d.thread_stack_bytes // 1024, help="stack per thread")
    parser.add_argument("--backlog", type=int, default=d.backlog, help="listen() backlog")


def config_from_args(argv: list[str] | None = None) -> ServerConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return ServerConfig(
            host=args.host,
            port=args.port,
            max_clients=args.max_clients,
            max_line_bytes=args.max_line_bytes,
            send_queue_bytes=args.send_queue_bytes,
            registration_timeout=args.registration_timeout,
            fanout=args.fanout,
            rate_limit=args.rate_limit,
            rate_burst=args.rate_burst,
            idle_timeout=args.idle_timeout,
            keepalive=args.keepalive,
            announce_limit=args.announce_limit,
            max_rooms=args.max_rooms,
            max_rooms_per_client=args.max_rooms_per_client,
            thread_stack_bytes=args.thread_stack_kib * 1024,
            backlog=args.backlog,
            log_level=args.log_level,
            backplane=args.backplane,
            reuse_port=args.reuse_port,
            ws_port=args.ws_port,
            ws_shootout=args.ws_shootout,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_port=args.tls_port,
            wss_port=args.wss_port,
            tls_only=args.tls_only,
            accounts=args.accounts,
            accounts_required=args.accounts_required,
        )
    except ValueError as exc:
        parser.error(str(exc))
