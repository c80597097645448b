"""Wire protocols the harness speaks: one adapter per protocol behind one interface.

Other packages use only what this module exports: :func:`get` gives the
:class:`Adapter` for a protocol name; an adapter's registration is an
I/O-free state machine (:class:`Registration`, :class:`Step`) that every
driver (swarm worker, gate, Locust users, tests) feeds with lines.

Modules: :mod:`~bench.wire.base` (the interface), :mod:`~bench.wire.chat`
(this project's protocol), :mod:`~bench.wire.irc` (the IRC codec) and
:mod:`~bench.wire.irc_adapter` (IRC as the harness speaks it),
:mod:`~bench.wire.chatblock` (the chat block layout the recorder's fast path
uses), :mod:`~bench.wire.broker` (what the pub/sub brokers share) with
:mod:`~bench.wire.mqtt_adapter`, :mod:`~bench.wire.redis_adapter` and
:mod:`~bench.wire.nats_adapter`.  A new protocol is one new module and one line in :data:`_ADAPTERS`.
"""

from collections.abc import Callable

from bench.wire.base import Adapter, Decoder, Incoming, Registration, Step
from bench.wire.chat import RECEIVER_LINE_LIMIT, ChatAdapter
from bench.wire.irc_adapter import IrcAdapter
from bench.wire.mqtt_adapter import MqttAdapter
from bench.wire.nats_adapter import NatsAdapter
from bench.wire.redis_adapter import RedisAdapter
from bench.wire.shootout import ShootoutAdapter
from bench.wire.ws_adapter import WsAdapter

#: The registry: protocol name -> its adapter's factory.
_ADAPTERS: dict[str, Callable[[], Adapter]] = {
    "chat": ChatAdapter,
    "irc": IrcAdapter,
    "mqtt": MqttAdapter,
    "redis": RedisAdapter,
    "nats": NatsAdapter,
    "ws": WsAdapter,
    "shootout": ShootoutAdapter,
}

#: The protocols ``--protocol`` accepts.
PROTOCOLS = tuple(_ADAPTERS)


def get(name: str, *, rooms: bool = False) -> Adapter:
    """The adapter for a ``--protocol`` value; ``rooms``: for a workload of
    several rooms (its decoders look at each delivery's room)."""
    factory = _ADAPTERS.get(name)
    if factory is None:
        raise ValueError(f"unknown protocol {name!r} (choose from {', '.join(PROTOCOLS)})")
    adapter = factory()
    if rooms:
        if adapter.no_rooms is not None:
            raise ValueError(adapter.no_rooms)
        adapter.rooms = True
    return adapter


__all__ = ["PROTOCOLS", "RECEIVER_LINE_LIMIT", "Adapter", "Decoder", "Incoming", "Registration", "Step", "get"]
