"""The Locust users' ``--chat-*`` command-line options.

:func:`add_arguments` adds them to Locust's parser (on its
``init_command_line_parser`` event), each with the attributes Locust's web
UI reads and a ``LOCUST_CHAT_*`` environment variable; :func:`option` reads
one back from a Locust environment.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.loadtest import phases
from bench.loadtest.clocks import DEFAULT_MAX_CLOCK_ERROR_MS
from bench.loadtest.support import MAX_PAYLOAD
from bench.measure import thresholds
from bench.measure.intervals import DEFAULT_INTERVAL_S
from bench.net.tls import TlsOptions
from bench.wire import PROTOCOLS
from bench.wire.client import Access
from bench.wire.credentials import CredentialsError, Logins, parse_credentials, single

#: Defaults of the ``--chat-*`` options.
DEFAULT_RATE = 1.0
DEFAULT_PAYLOAD = 64
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_PROTOCOL = "chat"
DEFAULT_PHASE = phases.SPREAD
DEFAULT_STEP_USERS = 50
DEFAULT_STEP_TIME = 10.0


def _payload_size(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_PAYLOAD:
        raise argparse.ArgumentTypeError(f"payload must be 0..{MAX_PAYLOAD} bytes (server line limit)")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _threshold(text: str) -> str:
    try:
        thresholds.parse(text)
    except thresholds.ThresholdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(parser: Any) -> None:
    """The ``--chat-*`` options (Locust's ``init_command_line_parser``)."""
    group = parser.add_argument_group(
        "chatbench", "Chat server load (host as tcp://HOST:PORT; fan-out latency in FANOUT rows)"
    )
    _add(
        group,
        "--chat-rate",
        type=_non_negative,
        default=DEFAULT_RATE,
        metavar="MSGS",
        help=f"chat messages per second per user; 0 = listen only (default {DEFAULT_RATE}). "
        "Deliveries per second = users x rate x (users - 1).",
    )
    _add(
        group,
        "--chat-phase",
        choices=list(phases.CHOICES),
        default=DEFAULT_PHASE,
        help="where in its period each user sends: spread (default; the users of a process take golden-ratio "
        "phases, nearly evenly spaced as the swarm's senders, on one clock grid) or random (a random phase per "
        "connection: probes bunch up now and then, and the server's queueing behind the bunches is measured too)",
    )
    _add(
        group,
        "--chat-payload",
        type=_payload_size,
        default=DEFAULT_PAYLOAD,
        metavar="BYTES",
        help=f"payload bytes in each message (default {DEFAULT_PAYLOAD}, at most {MAX_PAYLOAD})",
    )
    _add(
        group,
        "--chat-connect-timeout",
        type=_positive,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"connect + registration timeout (default {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    _add(
        group,
        "--chat-protocol",
        choices=list(PROTOCOLS),
        default=DEFAULT_PROTOCOL,
        help=f"what the host speaks (default {DEFAULT_PROTOCOL}): mqtt (MQTT 5, no-local), redis (pub/sub; each "
        "user publishes on a second connection; its own messages coming back are not counted), nats (echo off), "
        "or irc; the room is the topic 'chatbench'",
    )
    _add(
        group,
        "--chat-max-clock-error",
        "--max-clock-error",
        type=_non_negative,
        default=DEFAULT_MAX_CLOCK_ERROR_MS,
        metavar="MS",
        help="a delivery from a worker on another clock (another machine, a time namespace) is timed by the two "
        "clocks' measured offsets; when their error bound is over this, it is counted but not timed "
        f"(default {DEFAULT_MAX_CLOCK_ERROR_MS:g} ms)",
    )
    _add(
        group,
        "--chat-hdr-file",
        default=None,
        metavar="PATH",
        web_ui=False,
        help="where to save the exact fan-out percentiles (JSON); default <csv-prefix>_fanout_hdr.json "
        "when --csv is given, else only printed",
    )
    add_step_arguments(parser)
    add_time_arguments(parser)
    add_security_arguments(parser)


def add_step_arguments(parser: Any) -> None:
    """Step load (``--chat-step-*``): users added in steps up to ``-u``."""
    group = parser.add_argument_group("chatbench step load")
    _add(
        group,
        "--chat-step-load",
        action="store_true",
        default=False,
        web_ui=False,
        help="step load: start with --chat-step-users users and add as many every --chat-step-time "
        "seconds up to -u; ends after -t, or after the last step has run for a full step",
    )
    _add(
        group,
        "--chat-step-users",
        type=_positive_int,
        default=DEFAULT_STEP_USERS,
        metavar="N",
        help=f"users added per step (default {DEFAULT_STEP_USERS})",
    )
    _add(
        group,
        "--chat-step-time",
        type=_positive,
        default=DEFAULT_STEP_TIME,
        metavar="SECONDS",
        help=f"seconds per step (default {DEFAULT_STEP_TIME:g})",
    )


def add_time_arguments(parser: Any) -> None:
    """The time axis and the thresholds (``chat-bench run``'s ``--interval``
    and ``--threshold``, :mod:`bench.loadtest.timeline`)."""
    group = parser.add_argument_group("chatbench over time and thresholds")
    _add(
        group,
        "--chat-interval",
        type=_positive,
        default=DEFAULT_INTERVAL_S,
        metavar="SECONDS",
        help="deliveries are also counted per interval of this length, by arrival (epoch-aligned; "
        f"PREFIX_fanout.hlog and the JSON's intervals; default {DEFAULT_INTERVAL_S:g})",
    )
    _add(
        group,
        "--chat-threshold",
        type=_threshold,
        action="append",
        default=None,
        metavar="EXPR",
        web_ui=False,
        help="pass/fail criterion on the exact figures, as chat-bench run's --threshold (k6's syntax: "
        "p99<50ms, max<1s, lost==0, p99{clock=corrected}<5ms); repeatable; checked when Locust quits: "
        "exit code 99 when one fails",
    )


def _existing_file(text: str) -> str:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return text


def _credentials_file(text: str) -> str:
    try:
        parse_credentials(Path(text).read_text(encoding="utf-8"), text)
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"{text}: {getattr(exc, 'strerror', None) or exc}") from None
    except CredentialsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_security_arguments(parser: Any) -> None:
    """``--chat-tls`` and the logins: what ``chat-bench run``'s ``--tls``,
    ``--ca``, ``--insecure``, ``--server-name``, ``--user``, ``--password`` and
    ``--credentials`` do, for the host (a server somebody else started)."""
    group = parser.add_argument_group("chatbench TLS and logins", "every user's connection over TLS, logged in")
    _add(group, "--chat-tls", action="store_true", default=False, help="connect over TLS (certificate checked)")
    _add(
        group,
        "--chat-ca",
        type=_existing_file,
        default=None,
        metavar="FILE",
        help="trust this CA (PEM); implies --chat-tls",
    )
    _add(
        group,
        "--chat-insecure",
        action="store_true",
        default=False,
        help="TLS without a certificate check; implies --chat-tls",
    )
    _add(group, "--chat-server-name", default=None, metavar="NAME", help="name sent (SNI) and checked")
    _add(group, "--chat-user", default=None, metavar="USER", help="log in as this user (MQTT, Redis, NATS)")
    _add(group, "--chat-password", default=None, metavar="PASSWORD", help="the password (IRC: PASS; ours: each name's)")
    _add(
        group,
        "--chat-credentials",
        type=_credentials_file,
        default=None,
        metavar="FILE",
        web_ui=False,
        help="USER:PASSWORD lines; user i logs in with line i (modulo their number)",
    )


def access(environment: Any) -> Access:
    """The users' TLS settings and logins (``ValueError`` saying what is wrong)."""
    ca = option(environment, "chat_ca", None)
    insecure = bool(option(environment, "chat_insecure", False))
    name = option(environment, "chat_server_name", None)
    tls = None
    if option(environment, "chat_tls", False) or ca or insecure or name:
        tls = TlsOptions(ca, insecure, name)
    logins: Logins | None = None
    user, password = option(environment, "chat_user", None), option(environment, "chat_password", None)
    path = option(environment, "chat_credentials", None)
    try:
        if path is not None:
            logins = parse_credentials(Path(path).read_text(encoding="utf-8"), str(path))
        elif password is not None:
            logins = single(user, str(password))
    except (OSError, CredentialsError) as exc:
        raise ValueError(str(exc)) from None
    return Access(tls, logins)


def _add(group: Any, *flags: str, web_ui: bool = True, **kwargs: Any) -> None:
    """``add_argument`` on a group, with the attributes Locust's web UI looks
    for (only its top-level ``add_argument`` sets them) and, like Locust's
    own options, an environment variable (``--chat-rate``: LOCUST_CHAT_RATE)."""
    kwargs.setdefault("env_var", "LOCUST_" + flags[0].lstrip("-").replace("-", "_").upper())
    action = group.add_argument(*flags, **kwargs)
    action.include_in_web_ui = web_ui
    action.is_secret = False
    action.is_required = False
    action.is_multiple = False


def option(environment: Any, name: str, default: Any) -> Any:
    """The parsed ``--chat-*`` option ``name``, or ``default`` without one."""
    options = getattr(environment, "parsed_options", None)
    value = getattr(options, name, None)
    return default if value is None else value
