"""Process limits the server (and the harness that shares its host) lifts
before opening thousands of sockets."""

from __future__ import annotations

import resource

#: Soft descriptor limit asked for when the hard limit is unlimited: one fd
#: per client, 10,000 clients by default, with room for a harness of 100
#: times that on the same host; setrlimit refuses "infinity" as a soft limit
#: on some kernels, so a finite number is asked for.
UNLIMITED_NOFILE_TARGET = 1 << 20


def raise_open_file_limit() -> int:
    """Lift the soft open-files limit to the hard one (one fd per client) and
    return the soft limit now in force.  With an unlimited hard limit the soft
    one goes to :data:`UNLIMITED_NOFILE_TARGET`, and never down: a soft limit
    that is already higher (or unlimited) is kept."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:  # RLIM_INFINITY is -1: compares below every number
        return soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, UNLIMITED_NOFILE_TARGET)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            pass
    return soft
