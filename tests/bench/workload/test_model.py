"""The workload model: distributions, scenario files and the command line's
workload options -- what each accepts, and the one-line error for what it
refuses (naming the file and the key)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli
from bench.swarm import SwarmConfig
from bench.workload import Workload, WorkloadError, model, scenario

#: Seconds a `python -m bench` that only checks its options may take.
CLI_TIMEOUT_S = 60


def test_distributions_parse_and_print_back() -> None:
    assert model.room_sizes("zipf:1.0") == model.RoomSizes("zipf", s=1.0)
    assert str(model.room_sizes("ZIPF:1.5")) == "zipf:1.5"
    assert model.room_sizes("fixed:10") == model.RoomSizes("fixed", 10)
    assert model.room_sizes("uniform:2-50") == model.RoomSizes("uniform", 2, 50)
    assert str(model.room_sizes("fixed")) == "fixed"
    weighted = model.payload_sizes("64:80,1024:15,16384:5")
    assert weighted.sizes == (64, 1024, 16384) and weighted.weights == (80, 15, 5)
    assert weighted.largest == 16384 and weighted.mean == pytest.approx(64 * 0.8 + 1024 * 0.15 + 16384 * 0.05)
    assert str(weighted) == "64:80,1024:15,16384:5"
    assert model.payload_sizes("128").fixed == 128 and model.payload_sizes(32).fixed == 32
    assert model.payload_sizes("uniform:10-20").mean == 15 and model.payload_sizes("uniform:10-20").fixed is None
    assert model.skew("none") == 0 and model.skew("zipf:1.2") == 1.2


@pytest.mark.parametrize(
    ("parse", "text", "words"),
    [
        (model.room_sizes, "zipf:x", "not a number"),
        (model.room_sizes, "zipf:0", "must be in"),
        (model.room_sizes, "normal:3", "not fixed, fixed:M, uniform:A-B or zipf:S"),
        (model.room_sizes, "uniform:9-2", "empty"),
        (model.room_sizes, "uniform:5", "range A-B"),
        (model.room_sizes, "fixed:0", "out of range"),
        (model.payload_sizes, "64:0", "positive"),
        (model.payload_sizes, "64:1,64:2", "listed twice"),
        (model.payload_sizes, "64:80,big:3", "not a whole number"),
        (model.payload_sizes, str(model.MAX_PAYLOAD_BYTES + 1), "out of range"),
        (model.skew, "pareto:2", "not none or zipf:S"),
    ],
)
def test_bad_distributions_are_one_line_errors(parse: object, text: str, words: str) -> None:
    with pytest.raises(WorkloadError) as err:
        parse(text)  # type: ignore[operator]
    assert words in str(err.value) and "\n" not in str(err.value)


def test_workload_combinations_that_cannot_be_are_refused() -> None:
    with pytest.raises(WorkloadError, match="need --rooms R"):
        Workload(sizes=model.room_sizes("zipf:1"))
    with pytest.raises(WorkloadError, match="not both"):
        Workload(rooms=10, per_client=2, sizes=model.room_sizes("fixed:5"))
    with pytest.raises(WorkloadError, match="rooms per client"):
        Workload(rooms=3, per_client=4)
    with pytest.raises(WorkloadError, match="arrivals"):
        Workload(arrivals="bursty")
    assert Workload().plain and Workload().one_room
    assert Workload(senders_per_room=1).plain  # one room, one sender: the announcer
    assert not Workload(arrivals="poisson").plain and Workload(arrivals="poisson").one_room
    assert not Workload(rooms=2).one_room and not Workload(personal=True).one_room


def test_every_shipped_scenario_loads_and_says_what_it_is() -> None:
    assert {"one-room", "chat-app", "centrifugo", "announcer"} <= set(scenario.names())
    for name in scenario.names():
        w = scenario.load(name)
        assert w.name == name and w.description
    chat = scenario.load("chat-app")
    assert (chat.rooms, str(chat.sizes), chat.per_client, chat.senders_per_room) == (500, "zipf:1", 3, 1)
    cent = scenario.load("centrifugo")
    assert cent.personal and str(cent.sizes) == "fixed:10" and cent.per_client == 1
    assert scenario.load("announcer").one_room and scenario.load("announcer").senders_per_room == 1
    assert scenario.load("one-room").plain


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return str(path)


def test_a_users_own_file_is_read(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        'description = "mine"\nseed = 7\n[rooms]\ncount = 4\nsizes = "uniform:2-5"\npersonal = true\n'
        '[senders]\nper_room = 2\nskew = "zipf:1.1"\n'
        '[messages]\npayload = "64:9,128:1"\narrivals = "poisson"\nrate = "per-room"\n',
    )
    w = scenario.load(path)
    assert (w.name, w.seed, w.rooms, str(w.sizes), w.personal) == (path, 7, 4, "uniform:2-5", True)
    assert (w.senders_per_room, w.publisher_skew, str(w.payload)) == (2, 1.1, "64:9,128:1")
    assert (w.arrivals, w.rate_mode) == ("poisson", "per-room")
    assert scenario.load(_file(tmp_path, "[messages]\npayload = 200\n")).payload == model.payload_sizes(200)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[rooms\ncount = 3", "not valid TOML"),
        ("[room]\ncount = 3\n", "unknown key 'room'"),
        ("[rooms]\ncout = 3\n", "unknown key 'rooms.cout' (known in [rooms]: count, sizes, per_client, personal)"),
        ('[rooms]\ncount = "many"\n', "rooms.count must be a whole number, got 'many'"),
        ("[rooms]\npersonal = 1\n", "rooms.personal must be true or false"),
        ('[rooms]\nsizes = "zipf:-1"\n', "rooms.sizes: room sizes: the Zipf exponent must be in"),
        ("rooms = 3\n", "[rooms] must be a table"),
        ('[messages]\narrivals = "sometimes"\n', "messages.arrivals: arrivals: 'sometimes' is not one of"),
        ('[rooms]\nsizes = "zipf:1"\n', "need --rooms R"),
        ("seed = 1.5\n", "seed must be a whole number"),
    ],
)
def test_bad_files_are_refused_with_the_file_and_the_key(tmp_path: Path, text: str, words: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(WorkloadError) as err:
        scenario.load(path)
    message = str(err.value)
    assert message.startswith(path) and words in message and "\n" not in message


def test_a_missing_scenario_names_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="give one of announcer, centrifugo, chat-app, one-room"):
        scenario.load("chat-ap")
    with pytest.raises(WorkloadError, match="no scenario"):
        scenario.load(str(tmp_path / "absent.toml"))


def _args(*argv: str) -> SwarmConfig:
    args = cli.build_parser().parse_args(["run", *argv])
    return cli.swarm_config(args, 100)


def test_options_override_the_scenario_and_payload_resolves_once() -> None:
    base = _args("--scenario", "chat-app")
    assert base.workload.rooms == 500 and base.payload_bytes == 64 and base.workload.payload is None
    mine = _args("--scenario", "chat-app", "--rooms", "20", "--seed", "3", "--arrivals", "constant")
    assert (mine.workload.rooms, mine.workload.seed, mine.workload.arrivals) == (20, 3, "constant")
    assert mine.workload.per_client == 3 and mine.workload.name == "chat-app"
    mixed = _args("--rooms", "4", "--payload-sizes", "64:3,256:1")
    assert mixed.payload_bytes == 112 and str(mixed.workload.payload) == "64:3,256:1"
    fixed = _args("--rooms", "4", "--payload-sizes", "100")
    assert fixed.payload_bytes == 100 and fixed.workload.payload is None
    assert _args("--payload", "32").payload_bytes == 32 and _args().workload == Workload()
    with pytest.raises(cli.UsageError, match="not both"):
        _args("--payload", "32", "--payload-sizes", "64:1,65:1")
    per_room = _args("--rooms", "10", "--rate-per-room", "--rate", "5")
    assert per_room.total_rate == 50 and per_room.measured_messages == 250
    plain = _args("--scenario", "centrifugo", "--no-personal-rooms", "--room-sizes", "fixed", "--rooms", "3")
    assert not plain.workload.personal and plain.workload.name == "centrifugo"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--scenario", "nope"], "argument --scenario: no scenario 'nope'"),
        (["--room-sizes", "zipf:x"], "argument --room-sizes: room sizes: the Zipf exponent 'x' is not a number"),
        (["--room-sizes", "zipf:1", "--clients", "10"], "need --rooms R"),
        (["--rooms", "5", "--senders", "2", "--clients", "10"], "--senders counts the senders of one room"),
        (
            ["--rooms", "60", "--rooms-per-client", "55", "--clients", "60"],
            "add --server-arg=--max-rooms-per-client=56",
        ),
        (["--protocol", "shootout", "--rooms", "2", "--clients", "10"], "the websocket-shootout protocol has no rooms"),
        (["--rooms", "3", "--target", "faultrelay", "--clients", "10"], "the fault relay has one room"),
    ],
)
def test_the_command_line_refuses_a_workload_in_one_line_before_any_run(argv: list[str], words: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "run", *argv],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    first = out.stderr.splitlines()[0]
    assert words in first and "Traceback" not in out.stderr, out.stderr
