"""Accounts: the password file (``--accounts FILE``) and its hashes.

One account per line, ``NAME:scrypt$N$r$p$SALT$HASH`` (salt and hash in
base64; ``#`` starts a comment line).  Names cannot contain ``:``, so the
first one ends the name.  Hashes are ``hashlib.scrypt`` with a random
16-byte salt per account; verifying one costs ~50 ms and 16 MiB, which is
the point (a stolen file is slow to attack) and why :mod:`server.login`
bounds how many run at once and how often one address may fail.

``chat-server passwd NAME --accounts FILE`` (:func:`set_password`) adds an
account or changes its password, writing the file atomically with mode
0600; a running server rereads the file when it changed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from server import protocol

#: scrypt cost: N=2^14, r=8, p=1 is the RFC 7914 interactive-login setting
#: (16 MiB and ~50 ms per hash on this machine).
SCRYPT_N = 1 << 14
SCRYPT_R = 8
SCRYPT_P = 1
#: Random salt per account, and the hash length.
SALT_BYTES = 16
HASH_BYTES = 32
#: OpenSSL refuses scrypt past its memory cap unless told; 128 * r * N plus slack.
SCRYPT_MAXMEM = 64 << 20
#: Longest password accepted: far above any passphrase, bounds the hashing work.
MAX_PASSWORD_BYTES = 1024
#: The tag in front of every hash (the algorithm, should it ever change).
SCHEME = "scrypt"


class AccountsError(Exception):
    """The password file cannot be read, or a line in it is broken (the
    message names the file and the line)."""


@dataclass(frozen=True, slots=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def make(cls, password: str, salt: bytes | None = None) -> PasswordHash:
        salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
        digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        return cls(SCRYPT_N, SCRYPT_R, SCRYPT_P, salt, digest)

    def verify(self, password: str) -> bool:
        """Whether ``password`` is this hash's; constant time in the comparison."""
        return hmac.compare_digest(_scrypt(password, self.salt, self.n, self.r, self.p), self.digest)

    def encode(self) -> str:
        salt = base64.b64encode(self.salt).decode()
        digest = base64.b64encode(self.digest).decode()
        return f"{SCHEME}${self.n}${self.r}${self.p}${salt}${digest}"

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """A hash from ``encode``'s form; ``ValueError`` saying what is wrong."""
        parts = text.split("$")
        if len(parts) != 6 or parts[0] != SCHEME:
            raise ValueError(f"not a {SCHEME}$N$r$p$SALT$HASH hash")
        n, r, p = (int(x) for x in parts[1:4])
        if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or 128 * r * n > SCRYPT_MAXMEM // 2:
            raise ValueError("scrypt parameters out of range")
        return cls(n, r, p, base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=HASH_BYTES
    )


def check_password(password: str) -> str | None:
    """Why ``password`` cannot be an account's, or None."""
    if not password:
        return "the password is empty"
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        return f"the password is longer than {MAX_PASSWORD_BYTES} bytes"
    if "\n" in password or "\r" in password:
        return "the password has a line break"
    return None


def parse_accounts(text: str, source: str) -> dict[str, tuple[str, PasswordHash]]:
    """name key -> (name, hash) from a password file's text."""
    accounts: dict[str, tuple[str, PasswordHash]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        try:
            if not sep:
                raise ValueError("no ':' between name and hash")
            name = protocol.validate_name(name)
            accounts[protocol.name_key(name)] = (name, PasswordHash.parse(hashed))
        except (ValueError, protocol.ProtocolError) as exc:
            raise AccountsError(f"{source} line {number}: {exc}") from None
    return accounts


class AccountsFile:
    """The accounts of ``--accounts FILE``, reread when the file changes (so
    ``chat-server passwd`` takes effect in a running server)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._accounts: dict[str, tuple[str, PasswordHash]] = {}
        self.reload()

    def reload(self) -> None:
        """Read the file if it changed; ``AccountsError`` if it cannot be read."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AccountsError(f"cannot read the accounts file {self.path}: {exc}") from None
        accounts = parse_accounts(text, str(self.path))
        with self._lock:
            self._accounts, self._stamp = accounts, stamp

    def lookup(self, name: str) -> PasswordHash | None:
        """The hash of ``name``'s account, or None."""
        with self._lock:
            entry = self._accounts.get(protocol.name_key(name))
        return entry[1] if entry else None

    def __len__(self) -> int:
        return len(self._accounts)


def set_password(path: str | Path, name: str, password: str) -> bool:
    """Add ``name`` with ``password`` to the file (created if missing), or
    change its password; True if it was new.  The file is replaced
    atomically and readable by its owner only."""
    name = protocol.validate_name(name)
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    parse_accounts(text, str(path))  # refuse to rewrite a broken file
    entry = f"{name}:{PasswordHash.make(password).encode()}"
    key = protocol.name_key(name)
    lines = text.splitlines()
    new = True
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and protocol.name_key(stripped.partition(":")[0].strip()) == key:
            lines[i] = entry
            new = False
    if new:
        lines.append(entry)
    fd, tmp = tempfile.mkstemp(prefix=".accounts-", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return new
