"""The one registry of targets: every fact about a kind of target, in one entry.

A :class:`TargetKind` says what a ``--target`` name starts (its factory),
what it speaks (its protocol, and the other protocols it can be measured
over), the URL scheme that names one somebody else started, whether
``chat-bench compare`` runs it by default, what it needs installed, its
line of ``--help``, and whether it can be started with TLS and logins
(``--tls``, ``--user``/``--password``/``--credentials``).  Everything else
is derived from :data:`KINDS`: the names ``--target`` and ``--targets`` accept, the protocols, the URL schemes,
the ``--target``/``--protocol`` help texts, compare's default targets (and so
``make compare``'s), the peers ``chat-bench peers`` installs.

:func:`parse_target` is the one reader of a ``--target`` value (with
:func:`bench.wire.address.parse_address` for addresses); :func:`make_target`
builds the target it names.  A new kind of target is its module and one
entry in :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bench import wire
from bench.net.tls import TlsOptions
from bench.targets import certs
from bench.targets.base import PLAIN, Security, Target, TargetError
from bench.targets.brokers import REDIS_SERVER, MosquittoTarget, NatsTarget, RedisTarget
from bench.targets.cluster import MAX_NODES, ClusterTarget
from bench.targets.embedded import EmbeddedTarget
from bench.targets.external import ExternalTarget
from bench.targets.faultrelay import FaultRelayTarget
from bench.targets.packages import Package
from bench.targets.peers import MINIIRCD, NGIRCD, MiniircdTarget, NgircdTarget
from bench.targets.websocket import EmbeddedShootoutTarget, EmbeddedWsTarget
from bench.wire.address import Address, AddressError, parse_address
from bench.wire.ws_adapter import DEFAULT_WS_PORT, WS_PATH, WS_PATHS


@dataclass(frozen=True)
class Launch:
    """What a factory gets: the ``--server-arg`` options, N of ``cluster:N``,
    and the TLS and logins to start it with."""

    server_args: tuple[str, ...] = ()
    count: int | None = None
    security: Security = PLAIN


#: Nodes of ``cluster`` written without N.
DEFAULT_NODES = 2

#: Builds a target the harness starts itself.
Factory = Callable[[Launch], Target]


@dataclass(frozen=True)
class UrlScheme:
    """``SCHEME://HOST:PORT``: a server of this kind somebody else started."""

    name: str
    #: What such a server is, for --help ("a Redis").
    what: str
    #: What such a server may be spoken to with; the first is the default.
    protocols: tuple[str, ...]
    #: The port when the URL has none (None: the URL must give one).
    default_port: int | None = None
    #: The paths accepted after HOST:PORT.
    paths: tuple[str, ...] = ("", "/")
    #: The URL as the help text spells it.
    form: str = ""

    @property
    def spelling(self) -> str:
        return self.form or f"{self.name}://HOST:PORT"


@dataclass(frozen=True)
class TargetKind:
    """One kind of target (see the module's docstring)."""

    #: The ``--target`` name (``cluster`` is spelled ``cluster:N``).
    name: str
    #: What it speaks by default: a protocol of :data:`bench.wire.PROTOCOLS`.
    protocol: str
    #: Builds it for its default protocol.
    factory: Factory
    #: Its line of ``--target``'s help.
    help: str
    #: Other protocols it can be measured over: (protocol, factory).
    variants: tuple[tuple[str, Factory], ...] = ()
    #: The URL scheme naming one somebody else started (``redis://``), if any.
    scheme: UrlScheme | None = None
    #: Among ``chat-bench compare``'s (and ``make compare``'s) default targets.
    compare: bool = False
    #: What it needs installed (``chat-bench peers`` installs it).
    needs: tuple[Package, ...] = ()
    #: ``cluster:N``: the name takes a count, 1 to ``max_count``, ``default_count`` when left out.
    max_count: int | None = None
    default_count: int | None = None
    #: It runs this project's server, which takes the server's options (``--fanout``, ...).
    ours: bool = False
    #: The harness can start it serving TLS (``--tls``) with a certificate it generates.
    tls: bool = False
    #: The harness can start it letting in only the given logins.
    logins: bool = False

    @property
    def spelling(self) -> str:
        return f"{self.name}:N" if self.max_count is not None else self.name

    @property
    def protocols(self) -> tuple[str, ...]:
        """Every protocol it speaks; the first is the default."""
        return (self.protocol, *(p for p, _ in self.variants))

    def factory_for(self, protocol: str) -> Factory:
        return dict(self.variants).get(protocol, self.factory)

    def refusal(self, security: Security) -> str | None:
        """Why it cannot be started so secured (one line), or None."""
        if security.tls and not self.tls:
            return f"target {self.spelling} cannot be started with TLS by the harness (--tls works with {tls_kinds()})"
        if security.logins is not None and not self.logins:
            return (
                f"target {self.spelling} cannot be started with logins by the harness (--user/--password/"
                f"--credentials work with {login_kinds()})"
            )
        return None


def _choice(protocols: Sequence[str]) -> str:
    """``shootout (default) or ws``."""
    return " or ".join([f"{protocols[0]} (default)", *protocols[1:]])


def _needs_text(kind: TargetKind) -> str:
    return "; needs " + ", ".join(p.source for p in kind.needs) if kind.needs else ""


#: Every kind of target, ours first (compare's ratios are against it).
KINDS: tuple[TargetKind, ...] = (
    TargetKind(
        "embedded",
        "chat",
        lambda launch: EmbeddedTarget(launch.server_args, security=launch.security),
        "this project's server (`python -m server`, flood control off), started on a free loopback port for "
        "every point; `--protocol ws` or `shootout` measures it over its WebSocket port",
        variants=(
            ("ws", lambda launch: EmbeddedWsTarget(launch.server_args, security=launch.security)),
            ("shootout", lambda launch: EmbeddedShootoutTarget(launch.server_args, security=launch.security)),
        ),
        compare=True,
        ours=True,
        tls=True,
        logins=True,
    ),
    TargetKind(
        "embedded-ws",
        "ws",
        lambda launch: EmbeddedWsTarget(launch.server_args, security=launch.security),
        "the same server measured over WebSocket (`--target embedded --protocol ws`, as a name of its own)",
        scheme=UrlScheme(
            "ws",
            "a WebSocket server (a websocket-shootout one, say)",
            ("shootout", "ws"),
            DEFAULT_WS_PORT,
            WS_PATHS,
            f"ws://HOST:PORT{WS_PATH}",
        ),
        ours=True,
        tls=True,
        logins=True,
    ),
    TargetKind(
        "ngircd",
        "irc",
        lambda launch: NgircdTarget(launch.server_args, security=launch.security),
        "ngIRCd, spoken to over IRC, with a config the harness writes",
        compare=True,
        needs=(NGIRCD,),
        tls=True,
        logins=True,
    ),
    TargetKind(
        "miniircd",
        "irc",
        lambda launch: MiniircdTarget(launch.server_args),
        "miniircd (pure Python, select(): at most ~1,020 connections), spoken to over IRC",
        compare=True,
        needs=(MINIIRCD,),
    ),
    TargetKind(
        "mosquitto",
        "mqtt",
        lambda launch: MosquittoTarget(launch.server_args, security=launch.security),
        "Eclipse Mosquitto, MQTT 5 at QoS 0, started with a benchmark config (--server-arg: one more config line)",
        scheme=UrlScheme("mqtt", "an MQTT broker", ("mqtt",)),
        compare=True,
        needs=(MosquittoTarget.requires,),
        tls=True,
        logins=True,
    ),
    TargetKind(
        "redis",
        "redis",
        lambda launch: RedisTarget(launch.server_args, security=launch.security),
        "Redis pub/sub over RESP2, started with a benchmark config (--server-arg: one more config line)",
        scheme=UrlScheme("redis", "a Redis", ("redis",)),
        compare=True,
        needs=(REDIS_SERVER,),
        tls=True,
        logins=True,
    ),
    TargetKind(
        "nats",
        "nats",
        lambda launch: NatsTarget(launch.server_args, security=launch.security),
        "NATS core pub/sub, started with a benchmark config (--server-arg: one more config line)",
        scheme=UrlScheme("nats", "a NATS server", ("nats",)),
        compare=True,
        needs=(NatsTarget.requires,),
        tls=True,
        logins=True,
    ),
    TargetKind(
        "cluster",
        "chat",
        lambda launch: ClusterTarget(launch.count or DEFAULT_NODES, launch.server_args, share_port=False),
        f"redis-server and N (1 to {MAX_NODES}, default {DEFAULT_NODES}) of our server processes over a Redis "
        "backplane, each on a port of its own; client i talks to node i mod N, and latency is split same node vs "
        "across nodes",
        needs=(REDIS_SERVER,),
        max_count=MAX_NODES,
        default_count=DEFAULT_NODES,
        ours=True,
    ),
    TargetKind(
        "faultrelay",
        "chat",
        lambda launch: FaultRelayTarget(launch.server_args, launch.security),
        "the selftest's fault-injecting relay (`python -m bench.targets.faultrelay`; --server-arg passes its options)",
        tls=True,
    ),
)

#: name -> kind.
BY_NAME: dict[str, TargetKind] = {kind.name: kind for kind in KINDS}
#: URL scheme -> the kind it names.
SCHEMES: dict[str, TargetKind] = {kind.scheme.name: kind for kind in KINDS if kind.scheme is not None}
#: ``chat-bench compare``'s targets without --targets.
COMPARE_DEFAULTS: tuple[str, ...] = tuple(kind.name for kind in KINDS if kind.compare)
#: What a server already running at HOST:PORT may speak; the first is the default.
ADDRESS_PROTOCOLS: tuple[str, ...] = ("chat", *(p for p in wire.PROTOCOLS if p != "chat"))


@dataclass(frozen=True)
class TargetSpec:
    """A ``--target`` value, read: a kind the harness starts (``kind``, with
    ``count`` for ``cluster:N``), or the ``address`` of a server somebody
    else started (``scheme``: the kind its URL named, if any)."""

    text: str
    kind: TargetKind | None = None
    count: int | None = None
    address: Address | None = None
    scheme: TargetKind | None = None

    @property
    def protocols(self) -> tuple[str, ...]:
        """What it may be spoken to with; the first is the default."""
        if self.kind is not None:
            return self.kind.protocols
        if self.scheme is not None and self.scheme.scheme is not None:
            return self.scheme.scheme.protocols
        return ADDRESS_PROTOCOLS

    def protocol(self, requested: str | None = None) -> str:
        """The protocol to speak: ``requested`` (``--protocol``) if this
        target speaks it, else its default; TargetError for one it does not."""
        if requested is None:
            return self.protocols[0]
        if requested not in wire.PROTOCOLS:
            raise TargetError(f"unknown protocol {requested!r} (choose from {', '.join(wire.PROTOCOLS)})")
        if requested not in self.protocols:
            who = f"target {self.text}" if self.scheme is None else f"a {self.address_scheme}:// target"
            raise TargetError(f"--protocol {requested} does not apply: {who} speaks {' or '.join(self.protocols)}")
        return requested

    @property
    def address_scheme(self) -> str | None:
        return self.address.scheme if self.address is not None else None


def unknown_target(text: str) -> TargetError:
    names = ", ".join(kind.spelling for kind in KINDS)
    schemes = ", ".join(f"{name}://" for name in SCHEMES)
    return TargetError(f"unknown target {text!r}: choose from {names}, HOST:PORT, or a URL ({schemes})")


def parse_target(spec: str) -> TargetSpec:
    """Read a ``--target`` value (see :func:`target_help`); TargetError in one line."""
    text = spec.strip()
    name, colon, argument = text.partition(":")
    kind = BY_NAME.get(name)
    if kind is not None and kind.max_count is not None and not argument.startswith("/"):
        return TargetSpec(text, kind, count=_count(kind, text, argument if colon else None))
    if kind is not None and not colon:
        return TargetSpec(text, kind)
    scheme_name, sep, _ = text.partition("://")
    if not sep and not colon:
        raise unknown_target(text)
    scheme = SCHEMES.get(scheme_name.lower()) if sep else None
    if sep and scheme is None:
        urls = ", ".join(f"{name}://" for name in SCHEMES)
        raise TargetError(f"bad target {text!r}: scheme {scheme_name}:// is not accepted (a target URL is {urls})")
    try:
        url = scheme.scheme if scheme is not None else None
        if url is not None:
            address = parse_address(text, schemes=(url.name,), default_port=url.default_port, paths=url.paths)
        else:
            address = parse_address(text, paths=("",))
    except AddressError as exc:
        raise TargetError(f"bad target {exc}") from None
    return TargetSpec(text, address=address, scheme=scheme)


def _count(kind: TargetKind, text: str, argument: str | None) -> int:
    """N of ``cluster:N``."""
    assert kind.max_count is not None
    if argument is None:
        assert kind.default_count is not None
        return kind.default_count
    if not argument.isdigit() or not 1 <= int(argument) <= kind.max_count:
        raise TargetError(f"bad target {text!r}: {kind.spelling} needs N from 1 to {kind.max_count}")
    return int(argument)


def client_tls(tls: TlsOptions | None, spec: str) -> TlsOptions | None:
    """The clients' TLS settings for ``--target spec``: ``tls``, trusting the
    CA of a target the harness starts (it generates the certificate) unless
    ``--ca`` or ``--insecure`` said otherwise."""
    if tls is None or tls.ca_file is not None or tls.insecure or parse_target(spec).kind is None:
        return tls
    return replace(tls, ca_file=certs.ca_file())


def target_protocol(spec: str, protocol: str | None = None) -> str:
    """The protocol a ``--target`` speaks with ``--protocol`` (None: its default)."""
    return parse_target(spec).protocol(protocol)


def tls_kinds() -> str:
    return ", ".join(kind.spelling for kind in KINDS if kind.tls) + " and any server already running"


def login_kinds() -> str:
    return ", ".join(kind.spelling for kind in KINDS if kind.logins) + " and any server already running"


def make_target(
    spec: str,
    server_args: Sequence[str] = (),
    server_pid: int | None = None,
    protocol: str | None = None,
    security: Security = PLAIN,
) -> Target:
    """Build the target a ``--target`` value names (not started yet),
    secured as ``security`` says (a started kind that cannot be: a
    TargetError in one line); a server somebody else started is as it is."""
    parsed = parse_target(spec)
    proto = parsed.protocol(protocol)
    if parsed.kind is not None:
        if server_pid is not None:
            raise TargetError(
                f"--server-pid applies to a HOST:PORT target only; the harness knows the pid of the {spec} it starts"
            )
        why = parsed.kind.refusal(security)
        if why is not None:
            raise TargetError(why)
        return parsed.kind.factory_for(proto)(Launch(tuple(server_args), parsed.count, security))
    if server_args:
        started = ", ".join(kind.spelling for kind in KINDS)
        raise TargetError(
            f"server options ({' '.join(server_args)}) only apply to a server the harness starts ({started}), "
            f"not to {spec}"
        )
    assert parsed.address is not None
    return ExternalTarget(parsed.address.host, parsed.address.port, server_pid, proto)


# ---------------------------------------------------------------------------
# what --help says, derived from KINDS
# ---------------------------------------------------------------------------


def target_help() -> str:
    """``--target``'s help: every kind and address form."""
    started = "; ".join(f"'{kind.spelling}': {kind.help}{_needs_text(kind)}" for kind in KINDS)
    urls = "; ".join(
        f"{kind.scheme.spelling}: {kind.scheme.what} somebody else started"
        + (f", speaking {_choice(kind.scheme.protocols)}" if len(kind.scheme.protocols) > 1 else "")
        for kind in KINDS
        if kind.scheme is not None
    )
    return (
        f"what to measure. Started by the harness: {started}. Already running on this machine (loopback only): "
        f"HOST:PORT or [IPV6]:PORT, speaking --protocol (default chat); {urls}. `chat-bench peers --targets "
        "LIST --install` installs what a target needs"
    )


def protocol_help() -> str:
    """``--protocol``'s help: what each kind may speak."""
    several = [f"{kind.name} also {', '.join(kind.protocols[1:])}" for kind in KINDS if len(kind.protocols) > 1]
    urls = [
        f"a {kind.scheme.name}:// target {_choice(kind.scheme.protocols)}"
        for kind in KINDS
        if kind.scheme is not None and len(kind.scheme.protocols) > 1
    ]
    fixed = ", ".join(f"{kind.name} {kind.protocol}" for kind in KINDS if len(kind.protocols) == 1)
    return (
        f"what to speak: a HOST:PORT target's protocol (default chat); {'; '.join([*several, *urls])}; "
        f"the others speak their own ({fixed})"
    )


def needs(targets: Sequence[str]) -> list[Package]:
    """What the given ``--target`` values need installed, each once, in registry order."""
    wanted: dict[Package, None] = {}
    for spec in targets:
        kind = parse_target(spec).kind
        wanted.update(dict.fromkeys(kind.needs if kind is not None else ()))
    return list(wanted)
