"""The name the harness was started by, for its messages: ``chat-bench`` (the
installed command) or ``python -m bench``, so that an error's "see `X
--help`" or an example is what the user can type again.  The bottom layer:
every package of the harness may import it."""

from __future__ import annotations

import os
import sys

#: The installed command (pyproject.toml's [project.scripts]).
SCRIPT = "chat-bench"
#: The module form, which works from a checkout without installing.
MODULE = "python -m bench"


def invoked_as(argv0: str | None = None) -> str:
    """:data:`SCRIPT` when ``argv0`` (default ``sys.argv[0]``) is that
    command, else :data:`MODULE` (``python -m bench``, or a test runner)."""
    if argv0 is None:
        argv0 = sys.argv[0] if sys.argv else ""
    return SCRIPT if os.path.basename(argv0) == SCRIPT else MODULE


#: What this process was started as.
PROG = invoked_as()
