"""The one parser of addresses the harness connects to.

Every place that reads where a server is -- ``--target`` (``HOST:PORT``,
``[::1]:PORT``, ``redis://``, ``nats://``, ``mqtt://``, ``ws://HOST:PORT/ws``),
Locust's ``--host`` (``tcp://HOST:PORT``, ``ws://...``) -- goes through
:func:`parse_address`.  It only splits and checks the text; which schemes and
paths a caller accepts, and that the host is loopback, are the caller's rules
(:mod:`bench.targets.registry`, :func:`bench.targets.external.check_loopback`).
Errors are one line (:class:`AddressError`, a ``ValueError``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

#: What the error messages offer when the text is not an address at all.
FORMS = "HOST:PORT, [IPV6]:PORT or SCHEME://HOST:PORT"


class AddressError(ValueError):
    """Not an address the harness can use; the message says why, in one line."""


@dataclass(frozen=True)
class Address:
    """Where a server listens, as given: ``scheme`` None for a bare ``HOST:PORT``."""

    host: str
    port: int
    scheme: str | None = None
    path: str = ""

    @property
    def host_port(self) -> str:
        """``HOST:PORT`` (``[V6]:PORT``), as a log line or a result names it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(
    text: str,
    *,
    schemes: Collection[str] | None = None,
    default_scheme: str | None = None,
    default_port: int | None = None,
    paths: Collection[str] = ("", "/"),
) -> Address:
    """``HOST:PORT``, ``[V6]:PORT`` or ``SCHEME://HOST[:PORT][/PATH]`` -> :class:`Address`.

    ``schemes``: the schemes accepted (None: any); ``default_scheme``: the
    scheme of text given without one; ``default_port``: the port when none is
    given (None: a port is required); ``paths``: the paths accepted after
    ``HOST:PORT``.  :class:`AddressError` says what is wrong, in one line.
    """
    given = text.strip()
    scheme, sep, rest = given.partition("://")
    if not sep:
        scheme, rest = default_scheme or "", given
    scheme = scheme.lower()
    if sep and schemes is not None and scheme not in schemes:
        choices = " or ".join(f"{s}://HOST:PORT" for s in schemes) or "HOST:PORT"
        raise AddressError(f"{given!r}: scheme {scheme}:// is not accepted here; use {choices}")
    if rest.count(":") > 1 and not rest.startswith("["):
        raise AddressError(f"{given!r}: an IPv6 address goes in brackets, e.g. [::1]:8000")
    if not rest or rest.startswith((":", "/")):
        raise AddressError(f"{given!r} has no host name; expected {FORMS}")
    parts = urlsplit("//" + rest)
    try:
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise AddressError(f"{given!r}: bad port (expected a number from 1 to 65535)") from None
    if not host:
        raise AddressError(f"{given!r} has no host name; expected {FORMS}")
    if parts.query or parts.fragment or parts.path not in paths:
        served = " or ".join(p for p in paths if p.strip("/"))
        raise AddressError(
            f"{given!r}: unexpected {parts.path!r}" + (f" (path {served} only)" if served else " (no path here)")
        )
    if port is None:
        if default_port is None:
            if parts.netloc.endswith(":"):
                raise AddressError(f"{given!r}: the port is missing after ':'")
            raise AddressError(f"{given!r}: no port; expected {FORMS}")
        port = default_port
    if not 0 < port < 65536:
        raise AddressError(f"{given!r}: port {port} out of range (1-65535)")
    return Address(host, port, scheme or None, parts.path)
