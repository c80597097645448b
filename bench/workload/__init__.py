"""What a run asks for, as data: the plan of who is where and who must hear what.

* :mod:`~bench.workload.plan` -- clients, rooms and streams: the AUDIENCE of
  every message (who must receive it), from which expected deliveries,
  integrity pairs and labels are all computed, in one place.
* :mod:`~bench.workload.labels` -- the one labelling function: the label
  dimensions (``path=cross``, ...) a delivery is measured under.

No I/O here; the swarm, the gate and the studies build a :class:`Plan` and
hand it to whatever sends and receives.
"""

from bench.workload.labels import DIMENSIONS, label_key, label_values, routes
from bench.workload.plan import Client, Plan, Room, Stream, one_room

__all__ = ["DIMENSIONS", "Client", "Plan", "Room", "Stream", "label_key", "label_values", "one_room", "routes"]
