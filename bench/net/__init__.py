"""Sockets in, deliveries out: the harness's one receive path.

* :mod:`~bench.net.stamps` -- kernel receive timestamps (``SO_TIMESTAMPNS``).
* :mod:`~bench.net.rx` -- :class:`~bench.net.rx.StampedReader` (one reused
  buffer, every read with its arrival time and the harness's read lag) and
  :class:`~bench.net.rx.ReceivePath` (bytes -> the protocol adapter's
  deliveries -> the recorder), used by the swarm's workers, the gate, the
  one-broadcast and cluster-paths studies and the Locust users alike, so
  each works against every protocol.

This package sits above :mod:`bench.wire` (protocols) and
:mod:`bench.measure` (accounting), which open no sockets.
"""
