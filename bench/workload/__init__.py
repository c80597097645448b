"""What a run asks for, as data: the plan of who is where and who must hear what.

* :mod:`~bench.workload.plan` -- clients, rooms and streams: the AUDIENCE of
  every message (who must receive it), from which expected deliveries,
  integrity pairs and labels are all computed, in one place.
* :mod:`~bench.workload.labels` -- the one labelling function: the label
  dimensions (``path=cross``, ``room_size=10-99``, ...) a delivery is measured under.
* :mod:`~bench.workload.model` -- the workload: rooms R, their sizes, rooms
  per client, personal rooms, senders per room, publisher skew, payload
  sizes, arrivals, the rate's meaning, the seed; as options or a TOML file
  (:mod:`~bench.workload.scenario`, the shipped ones in ``scenarios/``).
* :mod:`~bench.workload.build` -- a workload laid out for one run's clients:
  members and streams; :mod:`~bench.workload.traffic` -- the drawn parts of
  its timetable (which stream sends message m, when, how big);
  :mod:`~bench.workload.locust` -- the same for a Locust user.

No I/O here; the swarm, the gate and the studies build a :class:`Plan` and
hand it to whatever sends and receives.
"""

from bench.workload.labels import DIMENSIONS, label_key, label_values, routes
from bench.workload.model import Workload, WorkloadError
from bench.workload.plan import Client, Plan, Room, Stream, delivery_name, one_room

__all__ = [
    "DIMENSIONS",
    "Client",
    "Plan",
    "Room",
    "Stream",
    "Workload",
    "WorkloadError",
    "delivery_name",
    "label_key",
    "label_values",
    "one_room",
    "routes",
]
