"""Names and client text, sans-IO: which usernames are valid, when two
names are the same, and how client text is made safe to show."""

from __future__ import annotations

import re
import unicodedata

from server.protocol.framing import ProtocolError

#: Longest username, in characters.  Long enough for real names and handles,
#: short enough that a line prefix stays readable on a terminal.
MAX_NAME_CHARS = 32

#: First characters reserved for server lines, so no name can impersonate a
#: notice (``*** ``), an action (``* ``), an error (``! ``), a prompt
#: (``? ``), a private line (``[``) or a command (``/``).
RESERVED_FIRST = frozenset("*!?[/#@")
#: Characters that would make ``NAME: TEXT`` or name lists ambiguous.
_FORBIDDEN_IN_NAME = frozenset(":,")
#: U+FFFD REPLACEMENT CHARACTER: what invalid UTF-8 decodes to (and what
#: control characters in text become).  A name made of it is bytes the client
#: did not mean, and "\ufffd\ufffd" and "\ufffd\ufffd\ufffd" look alike to people.
REPLACEMENT_CHAR = "\ufffd"


def validate_name(raw: str) -> str:
    """Return the stripped name or raise :class:`ProtocolError` saying why
    it is not acceptable.  Uniqueness is the hub's business: see
    :func:`name_key`."""
    name = raw.strip()
    if not name:
        raise ProtocolError("name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise ProtocolError(f"name is longer than {MAX_NAME_CHARS} characters")
    for ch in name:
        if ch.isspace():
            raise ProtocolError("name must not contain spaces")
        if not ch.isprintable():
            raise ProtocolError("name must not contain control characters")
        if ch in _FORBIDDEN_IN_NAME:
            raise ProtocolError(f"name must not contain {ch!r}")
        if ch == REPLACEMENT_CHAR:
            raise ProtocolError("name must be valid UTF-8 (it contains U+FFFD, the replacement character)")
    if name[0] in RESERVED_FIRST:
        raise ProtocolError(f"name must not start with {name[0]!r}")
    return name


def name_key(name: str) -> str:
    """The key under which names are unique: case-insensitive and with
    Unicode compatibility forms folded, so ``Alice`` and ``ALICE`` clash."""
    return unicodedata.normalize("NFKC", name).casefold()


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def sanitize_text(text: str) -> str:
    """Make client text safe to show on other people's terminals: tabs become
    spaces and every other control character (ESC and so ANSI sequences, NUL,
    bell, C1 controls, line separators) becomes U+FFFD."""
    if text.isprintable():
        return text
    return _CONTROL.sub("\ufffd", text.replace("\t", " "))
