"""Logging in with a password (``--accounts``): one verdict per attempt, and
the per-address limit on failures.

The session asks (:mod:`server.session`); this module decides.  It never
tells a client whether a name has an account: an unknown name and a wrong
password get the same verdict after the same work (an unknown name is
checked against a dummy hash with the same scrypt cost), and the session
answers both after the same pause.  Without ``--accounts-required`` a name
with no account joins as a guest with any password; that a *wrong*
password fails for a registered name then tells that it is registered,
which no design with guests can avoid (docs/protocol.md says so).
"""

from __future__ import annotations

import enum
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from server import protocol
from server.accounts import MAX_PASSWORD_BYTES, AccountsError, AccountsFile, PasswordHash

log = logging.getLogger(__name__)

#: Failed logins one address may have within LOGIN_WINDOW_SECONDS; past
#: that its attempts are refused unchecked until the oldest failure ages
#: out.  Five typos is generous for a person; a guesser gets 5 a minute.
MAX_FAILURES = 5
LOGIN_WINDOW_SECONDS = 60.0
#: Pause before answering a failed login, in that client's reader thread
#: only: a script guessing over one connection is slowed, a person barely
#: notices, and nothing else waits.
FAILURE_DELAY_SECONDS = 1.0
#: Failed logins one connection may make before it is disconnected.
MAX_ATTEMPTS_PER_CONNECTION = 3
#: Password checks running at once: each holds 16 MiB for ~40 ms (scrypt
#: releases the GIL), so many logins at once cannot take the memory.
CONCURRENT_CHECKS = 4
#: Addresses whose failures are remembered; past this the longest-quiet one
#: is forgotten, so a spray from many addresses cannot grow the table.
MAX_TRACKED_ADDRESSES = 10_000


class Outcome(enum.Enum):
    ACCOUNT = "account"  # the name's password
    GUEST = "guest"  # a name without an account, accounts optional
    FAILED = "failed"  # unknown name (accounts required) or wrong password
    TOO_LONG = "too long"  # a password past MAX_PASSWORD_BYTES (a failure too)
    LIMITED = "limited"  # this address failed too often: not checked


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    #: With LIMITED: seconds until this address may try again.
    retry_after: float = 0.0


class FailureLog:
    """Failed logins per source address in a sliding window (thread-safe)."""

    def __init__(
        self,
        limit: int = MAX_FAILURES,
        window: float = LOGIN_WINDOW_SECONDS,
        max_addresses: int = MAX_TRACKED_ADDRESSES,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked_for(self, host: str, now: float) -> float:
        """Seconds until ``host`` may try again (0: now)."""
        with self._lock:
            times = self._failures.get(host)
            if times is None:
                return 0.0
            while times and times[0] <= now - self.window:
                times.popleft()
            if not times:
                del self._failures[host]
                return 0.0
            return times[0] + self.window - now if len(times) >= self.limit else 0.0

    def record(self, host: str, now: float) -> None:
        with self._lock:
            times = self._failures.pop(host, None) or deque(maxlen=self.limit)
            times.append(now)
            self._failures[host] = times  # the most recent at the end
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)


class Login:
    """The server's login policy: accounts, guests, failure limits."""

    def __init__(self, accounts: AccountsFile, required: bool = False, failures: FailureLog | None = None) -> None:
        self.accounts = accounts
        self.required = required
        self.failures = failures or FailureLog()
        #: The pause before a failed login is answered (see FAILURE_DELAY_SECONDS).
        self.failure_delay = FAILURE_DELAY_SECONDS
        self._checks = threading.BoundedSemaphore(CONCURRENT_CHECKS)
        #: Checked instead of a hash for a name without an account (same cost).
        self._dummy = PasswordHash.make(secrets.token_urlsafe(16))

    def check(self, host: str, name: str, password: str, now: float | None = None) -> Verdict:
        """The verdict on ``name`` logging in with ``password`` from ``host``."""
        now = time.monotonic() if now is None else now
        wait = self.failures.blocked_for(host, now)
        if wait > 0:
            log.warning("login for %s from %s refused: too many failed logins from there", name, host)
            return Verdict(Outcome.LIMITED, wait)
        if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
            self._failed(host, name, now, "password too long")
            return Verdict(Outcome.TOO_LONG)
        try:
            self.accounts.reload()
        except AccountsError as exc:  # keep serving with the accounts last read
            log.error("%s", exc)
        hashed = self.accounts.lookup(name)
        if hashed is None and not self.required:
            return Verdict(Outcome.GUEST)
        with self._checks:
            matches = (hashed or self._dummy).verify(password)
        if matches and hashed is not None:
            return Verdict(Outcome.ACCOUNT)
        self._failed(host, name, now, "unknown name or wrong password")
        return Verdict(Outcome.FAILED)

    def _failed(self, host: str, name: str, now: float, why: str) -> None:
        self.failures.record(host, now)
        log.warning("failed login for %s from %s (%s)", name, host, why)  # never the password

    def rename_refusal(self, account: str | None, new_name: str) -> str | None:
        """Why a session logged in as ``account`` (None: a guest) may not
        take ``new_name`` with /nick, or None: it may."""
        key = protocol.name_key(new_name)
        if account is not None and key == protocol.name_key(account):
            return None  # its own name, in other letters
        if self.required:  # the same answer for every other name: it tells nothing
            return "Accounts are required here: /nick can only change the case of your own name"
        if self.accounts.lookup(new_name) is not None:
            return f"Name is registered: {new_name} (log in with it instead)"
        return None
