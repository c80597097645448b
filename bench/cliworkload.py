"""The command line's workload options: rooms, senders, payloads and
arrivals (``--scenario``, ``--rooms`` ...) and membership over time
(``--churn``, ``--storm`` ...), and what they make (a
:class:`~bench.workload.Workload`, a :class:`~bench.workload.membership.Churn`).
Part of :mod:`bench.cli`, which re-exports every name here."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace

from bench.usage import UsageError
from bench.workload import Workload, WorkloadError, membership, model, scenario
from bench.workload.membership import Churn

#: Bytes of a chat message's text when no option says otherwise (``make bench``'s sweep).
DEFAULT_PAYLOAD = 64


def churn_options(p: argparse.ArgumentParser) -> None:
    """Membership over time (bench/workload/membership.py): churn and a reconnect storm during traffic."""
    d = Churn()
    g = p.add_argument_group(
        "churn and storms",
        "connections that leave and come back during traffic (receivers that do not send; the senders stay). "
        "A connection is owed what is sent after the server confirmed its registration, until shortly before "
        "it leaves (README: Churn and storms)",
    )
    g.add_argument(
        "--churn",
        type=float,
        default=d.rate,
        metavar="RATE",
        help="connections per second that leave and are replaced at once, from the end of the warm-up",
    )
    g.add_argument(
        "--churn-mode",
        choices=membership.CHURN_MODES,
        default=d.mode,
        help="how a connection leaves (churn and storm): quit (the protocol's goodbye, then a clean close), "
        "reset (TCP RST), mixed (a seeded draw per leave)",
    )
    g.add_argument(
        "--churn-names",
        choices=membership.NAME_MODES,
        default=d.names,
        help="a replacement registers under a new name (NAMErK) or the same name (retried while the server "
        "still holds it)",
    )
    g.add_argument(
        "--storm",
        type=parsed(membership.parse_storm),
        metavar="PCT@T",
        help="drop PCT%% of the churnable connections at once at T seconds on the run's time axis (0: the first "
        "send), e.g. 50@10; they reconnect by --reconnect",
    )
    g.add_argument(
        "--storm-node",
        type=int,
        metavar="N",
        help="a cluster: the storm strikes node N's connections only (PCT%% of them), and they reconnect to the "
        "next node",
    )
    g.add_argument(
        "--reconnect",
        choices=membership.RECONNECT_POLICIES,
        default=d.reconnect,
        help="how dropped connections come back: immediate, or backoff (jittered exponential, --backoff)",
    )
    g.add_argument(
        "--backoff",
        type=parsed(membership.parse_backoff),
        metavar="BASE,CAP",
        help=f"--reconnect backoff: attempt k waits a uniform draw in [0, min(CAP, BASE x 2^k)) seconds "
        f"(default {d.backoff_base_s:g},{d.backoff_cap_s:g})",
    )
    g.add_argument(
        "--leave-grace",
        type=float,
        default=d.leave_grace_s,
        metavar="S",
        help="messages intended this long before a connection's leave are owed to it; later ones may have been "
        "in flight (not counted as lost when missing)",
    )


def churn_of(args: argparse.Namespace) -> Churn:
    """The churn the options describe (all off without them)."""
    get = args.__dict__.get
    storm = get("storm") or (0.0, 0.0)
    backoff = get("backoff") or (Churn.backoff_base_s, Churn.backoff_cap_s)
    try:
        return Churn(
            rate=float(get("churn") or 0.0),
            mode=get("churn_mode") or Churn.mode,
            names=get("churn_names") or Churn.names,
            storm_percent=storm[0],
            storm_at_s=storm[1],
            reconnect=get("reconnect") or Churn.reconnect,
            backoff_base_s=backoff[0],
            backoff_cap_s=backoff[1],
            probe_rate=float(get("probe_rate") or 0.0),
            leave_grace_s=float(get("leave_grace", Churn.leave_grace_s)),
            storm_node=get("storm_node"),
        )
    except WorkloadError as exc:
        raise UsageError(str(exc)) from None


def parsed(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a workload parser (its error is argparse's one line)."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except WorkloadError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def workload_options(p: argparse.ArgumentParser) -> None:
    """The workload (bench/workload): a scenario, then any of these on top of it."""
    g = p.add_argument_group(
        "workload",
        "rooms, senders and messages; without any of these every client is in one room and hears every sender. "
        "A --scenario gives them all; an option given too overrides the scenario's value",
    )
    g.add_argument(
        "--scenario",
        type=parsed(scenario.load),
        metavar="NAME|FILE",
        help=f"a shipped workload ({', '.join(scenario.names())}) or a TOML workload file (README: Workloads)",
    )
    g.add_argument("--rooms", type=int, metavar="R", help="rooms (default 1; personal rooms not counted)")
    g.add_argument(
        "--room-sizes",
        type=parsed(model.room_sizes),
        metavar="DIST",
        help="fixed (memberships spread evenly; default), fixed:M (M members each), uniform:A-B, zipf:S "
        "(room i of R gets a share i**-S of the memberships)",
    )
    g.add_argument("--rooms-per-client", type=int, metavar="K", help="rooms each client is in (default 1)")
    g.add_argument(
        "--personal-rooms",
        action=argparse.BooleanOptionalAction,
        help="also a room of its own per client, sent to by one other client",
    )
    g.add_argument(
        "--senders-per-room",
        type=int,
        metavar="S",
        help="members of each room that send (default 1; in one room: the senders, as --senders)",
    )
    g.add_argument(
        "--publisher-skew",
        type=parsed(model.skew),
        metavar="none|zipf:S",
        help="the streams' shares of the rate: equal (none, default) or Zipf over a random ranking",
    )
    g.add_argument(
        "--payload-sizes",
        type=parsed(model.payload_sizes),
        metavar="DIST",
        help="payload bytes drawn per message: uniform:A-B, or sizes with weights 64:80,1024:15,16384:5",
    )
    g.add_argument("--arrivals", choices=model.ARRIVALS, help="constant (default) or poisson (exponential gaps)")
    g.add_argument(
        "--rate-per-room",
        action=argparse.BooleanOptionalAction,
        help="--rate is messages/s per room (total: rate x rooms with a sender), not over all rooms",
    )
    g.add_argument("--seed", type=int, help="seed of every random draw of the workload (default 1)")


def workload_of(args: argparse.Namespace) -> tuple[Workload, int]:
    """The workload the options describe (the scenario, overridden by the
    options given) and the payload bytes of a message (``--payload``, the
    workload's one size, the mean of its distribution, or the default)."""
    get = args.__dict__.get
    base: Workload = get("scenario") or Workload()
    workload = base.with_options(
        rooms=get("rooms"),
        sizes=get("room_sizes"),
        per_client=get("rooms_per_client"),
        personal=get("personal_rooms"),
        senders_per_room=get("senders_per_room"),
        publisher_skew=get("publisher_skew"),
        payload=get("payload_sizes"),
        arrivals=get("arrivals"),
        rate_mode=None if get("rate_per_room") is None else ("per-room" if get("rate_per_room") else "total"),
        seed=get("seed"),
    )
    payload = get("payload")
    if payload is not None:
        if get("payload_sizes") is not None:
            raise UsageError("give --payload (one size) or --payload-sizes (a distribution), not both")
        return replace(workload, payload=None), payload
    if workload.payload is None:
        return workload, DEFAULT_PAYLOAD
    fixed = workload.payload.fixed
    if fixed is not None:
        return replace(workload, payload=None), fixed
    return workload, round(workload.payload.mean)
