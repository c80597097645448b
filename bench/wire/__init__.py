"""Wire protocols the harness speaks: one adapter per protocol behind one interface.

Other packages use only what this module exports: :func:`get` gives the
:class:`Adapter` for a protocol name; an adapter's registration is an
I/O-free state machine (:class:`Registration`, :class:`Step`) that every
driver (swarm worker, gate, Locust users, tests) feeds with lines.
"""

from bench.wire.adapters import PROTOCOLS, Adapter, Registration, Step, get

__all__ = ["PROTOCOLS", "Adapter", "Registration", "Step", "get"]
