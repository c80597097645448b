"""The command line's TLS and login options (``--tls``, ``--ca``, ``--user``,
``--credentials`` ...) and what they make (the client's
:class:`~bench.net.tls.TlsOptions` and :class:`~bench.wire.credentials.Logins`).
Part of :mod:`bench.cli`, which re-exports every name here."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.net.tls import TlsOptions
from bench.targets import registry
from bench.usage import UsageError
from bench.wire.credentials import CredentialsError, Logins, parse_credentials, single


def security_options() -> argparse.ArgumentParser:
    """TLS and logins: --tls, --ca, --insecure, --server-name, --tls-resume, --user, --password, --credentials."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("TLS")
    g.add_argument(
        "--tls",
        action="store_true",
        help="every connection over TLS: a target the harness starts serves TLS with a certificate it generates "
        f"(and its clients trust; {registry.tls_kinds()}); a running server's certificate is checked against "
        "the system's CAs (or --ca) and its name",
    )
    g.add_argument(
        "--ca", metavar="FILE", help="trust this CA certificate (PEM) instead of the system's; implies --tls"
    )
    g.add_argument(
        "--insecure",
        action="store_true",
        help="TLS without any certificate check (a self-signed server); implies --tls, and every result says so",
    )
    g.add_argument("--server-name", metavar="NAME", help="the name sent (SNI) and checked (default: the target's host)")
    g.add_argument(
        "--tls-resume",
        action="store_true",
        help="each worker's connections after its first offer the previous one's session (resumed handshakes, "
        "timed apart from full ones)",
    )
    add_login_options(p)
    return p


def login_options() -> argparse.ArgumentParser:
    """Logins alone: --user, --password, --credentials."""
    p = argparse.ArgumentParser(add_help=False)
    add_login_options(p)
    return p


def add_login_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("logins")
    g.add_argument(
        "--user",
        help="log in as this user (MQTT, Redis, NATS); a target the harness starts lets in only this login",
    )
    g.add_argument(
        "--password",
        help="the password (visible to other users in `ps`: prefer --credentials); alone, every client's "
        "password: IRC's server password (PASS), our server's per-name accounts (the harness enrolls its clients)",
    )
    g.add_argument(
        "--credentials",
        metavar="FILE",
        help="USER:PASSWORD lines, client i logs in with line i (modulo their number); for our protocol the users "
        "are the clients' names (one line per client)",
    )


def client_security(args: argparse.Namespace) -> tuple[TlsOptions | None, Logins | None]:
    """The TLS settings and logins the options give (UsageError in one line)."""
    get = args.__dict__.get
    tls = None
    if get("tls") or get("ca") or get("insecure") or get("server_name") or get("tls_resume"):
        ca = get("ca")
        if ca is not None and not Path(ca).is_file():
            raise UsageError(f"--ca {ca}: no such file")
        if ca is not None and get("insecure"):
            raise UsageError("--ca and --insecure contradict each other: --insecure checks no certificate")
        tls = TlsOptions(ca, bool(get("insecure")), get("server_name"), bool(get("tls_resume")))
        if tls.insecure:
            print("warning: --insecure: the target's TLS certificate is not checked", file=sys.stderr)
    logins = None
    try:
        if get("credentials") is not None:
            if get("user") is not None or get("password") is not None:
                raise UsageError("--credentials or --user/--password, not both")
            path = Path(str(get("credentials")))
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"--credentials {path}: {getattr(exc, 'strerror', None) or exc}") from None
            logins = parse_credentials(text, str(path))
        elif (password := get("password")) is not None:
            logins = single(get("user"), str(password))
        elif get("user") is not None:
            raise UsageError("--user needs --password (or --credentials FILE)")
    except CredentialsError as exc:
        raise UsageError(str(exc)) from None
    return tls, logins
