"""Logins: who the harness's clients log in as, and what each protocol takes.

A :class:`Credentials` value is one login (a user and a password); a
registration gets one (:meth:`bench.wire.Adapter.registration`) and puts it
on the wire its protocol's way:

=========  ===========================================================  ================
protocol   on the wire                                                  :data:`LOGINS`
=========  ===========================================================  ================
chat, ws   the password answers ``? Enter your password:`` after the    ``name``
           name; the account IS the client's name
irc        ``PASS password`` before ``NICK``/``USER`` (a server          ``password``
           password: IRC has no user in it)
mqtt       ``CONNECT`` with user name and password                       ``user``
redis      ``AUTH user password`` (an ACL user) before anything else      ``user``
nats       ``CONNECT {"user": ..., "pass": ...}``                         ``user``
shootout   nothing: the websocket-shootout protocol has no login          ``none``
=========  ===========================================================  ================

:class:`Logins` is the run's list (``--user``/``--password``: one;
``--credentials FILE``: one ``USER:PASSWORD`` line each); client *i* uses
login *i* modulo their number.  For ``name`` protocols the users are the
clients' names, so a file needs one line per client.  Nothing here does
I/O (the command line reads the file) and no password is ever written into
a result: :meth:`Logins.describe` says who, never with what.
"""

from __future__ import annotations

from dataclasses import dataclass

#: How a protocol logs in (see the module docstring's table).
LOGIN_NAME = "name"  #: a password per client name (our chat protocol)
LOGIN_PASSWORD = "password"  #: a server password, no user (IRC's PASS)
LOGIN_USER = "user"  #: a user and a password (the brokers)
LOGIN_NONE = "none"  #: no login at all
LOGINS = (LOGIN_NAME, LOGIN_PASSWORD, LOGIN_USER, LOGIN_NONE)


@dataclass(frozen=True, slots=True)
class Credentials:
    """One login.  ``user`` None: the protocol's own name is the user (chat)
    or it has no user (IRC's server password)."""

    user: str | None
    password: str

    def __repr__(self) -> str:  # never the password, in a traceback or a log
        return f"Credentials(user={self.user!r}, password=***)"


class CredentialsError(ValueError):
    """A credentials file or option that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Logins:
    """The run's logins; client ``i`` uses ``accounts[i % len(accounts)]``."""

    accounts: tuple[Credentials, ...]
    #: where they came from, for the results ("--user", "FILE (N lines)")
    source: str = "--user/--password"

    def __post_init__(self) -> None:
        if not self.accounts:
            raise CredentialsError("no credentials given")

    def for_client(self, index: int) -> Credentials:
        return self.accounts[index % len(self.accounts)]

    @property
    def users(self) -> list[str]:
        return [a.user for a in self.accounts if a.user is not None]

    def check(self, protocol: str, login: str, clients: int) -> None:
        """:class:`CredentialsError` (one line) unless ``protocol`` (whose
        adapter logs in by ``login``) can use these for ``clients`` connections."""
        users = self.users
        if login == LOGIN_NONE:
            raise CredentialsError(f"the {protocol} protocol has no login: drop --user/--password/--credentials")
        if login == LOGIN_PASSWORD and users:
            raise CredentialsError(
                f"{protocol} logs in with a server password only (PASS): give --password without --user"
            )
        if login == LOGIN_USER and len(users) != len(self.accounts):
            raise CredentialsError(f"{protocol} logs in with a user and a password: give --user too")
        if login == LOGIN_NAME and users:
            if self.source.startswith("--user"):
                raise CredentialsError(
                    f"{protocol} logs in under each client's own name: give --password alone (every client's), "
                    "or --credentials FILE with one NAME:PASSWORD line per client"
                )
            if len(set(users)) < clients:
                raise CredentialsError(
                    f"{protocol} logs in under each client's name: {self.source} names {len(set(users))} "
                    f"distinct clients, the run needs {clients}"
                )

    def describe(self) -> str:
        """Who logs in, never with what: ``user bench`` / ``3 users`` / ``a password``."""
        users = sorted(set(self.users))
        if not users:
            return f"a password ({self.source})"
        if len(users) == 1:
            return f"user {users[0]} ({self.source})"
        return f"{len(users)} users ({self.source})"


def parse_credentials(text: str, source: str) -> Logins:
    """``USER:PASSWORD`` lines (the first ``:`` ends the user; blank lines
    and ``#`` comments skipped) -> :class:`Logins`; :class:`CredentialsError`
    naming the line that is wrong (never its password)."""
    accounts: list[Credentials] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise CredentialsError(f"{source} line {number}: expected USER:PASSWORD")
        accounts.append(Credentials(user.strip(), password))
    if not accounts:
        raise CredentialsError(f"{source}: no USER:PASSWORD line")
    return Logins(tuple(accounts), f"{source} ({len(accounts)} lines)")


def single(user: str | None, password: str) -> Logins:
    """``--user``/``--password`` as :class:`Logins`."""
    if not password:
        raise CredentialsError("--password is empty")
    if any(c in password for c in "\r\n\0"):
        raise CredentialsError("--password holds a line break or NUL")
    return Logins((Credentials(user or None, password),), "--user/--password" if user else "--password")
