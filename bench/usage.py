"""The command line's one error type: options that do not make sense
together (``bench.cli`` prints its message as one line, exit code 2)."""

from __future__ import annotations


class UsageError(Exception):
    """The options do not make sense together; the message says why."""
