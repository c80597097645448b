"""The target registry: every fact about a target kind in one entry, and
everything else -- the help text, the protocols, compare's defaults, the
Makefile's list, the peers to install -- derived from it; one address parser."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import cli, wire
from bench.studies import compare
from bench.targets import TargetError, make_target, parse_target, registry
from bench.targets.brokers import REDIS_SERVER
from bench.targets.peers import MINIIRCD, NGIRCD
from bench.wire.address import AddressError, parse_address
from tests.paths import REPO

ROOT = REPO


def _help(subcommand: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bench", subcommand, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"COLUMNS": "400", "PATH": "/usr/bin:/bin"},
    )
    return done.stdout


def test_the_help_names_every_registered_kind_and_url_form() -> None:
    text = _help("run")
    for kind in registry.KINDS:
        assert f"'{kind.spelling}'" in text, kind.name
        if kind.scheme is not None:
            assert kind.scheme.spelling in text
    assert "HOST:PORT or [IPV6]:PORT" in text
    # --protocol's help says what each kind speaks
    for kind in registry.KINDS:
        assert kind.name in registry.protocol_help()


def test_every_protocol_a_kind_or_scheme_speaks_is_a_registered_wire_protocol() -> None:
    for kind in registry.KINDS:
        assert set(kind.protocols) <= set(wire.PROTOCOLS), kind.name
        if kind.scheme is not None:
            assert set(kind.scheme.protocols) <= set(wire.PROTOCOLS), kind.scheme.name
    assert set(registry.ADDRESS_PROTOCOLS) == set(wire.PROTOCOLS)
    assert len({kind.name for kind in registry.KINDS}) == len(registry.KINDS)


def test_each_factory_builds_a_target_of_its_kind_speaking_its_protocol() -> None:
    for kind in registry.KINDS:
        if not all(p.installed for p in kind.needs):
            continue  # its constructor refuses (tested with the peers)
        for protocol in kind.protocols:
            target = make_target(kind.name, protocol=protocol)
            assert target.protocol == protocol, (kind.name, protocol)
            assert target.kind == kind.name or target.kind.startswith(f"{kind.name}:") or kind.name == "embedded-ws"


def test_compare_defaults_and_the_makefile_come_from_the_registry() -> None:
    assert compare.DEFAULT_TARGETS == registry.COMPARE_DEFAULTS
    assert registry.COMPARE_DEFAULTS[0] == "embedded"  # ours first: the ratios are against it
    makefile = (ROOT / "Makefile").read_text()
    assert ",".join(registry.COMPARE_DEFAULTS[1:3]) not in makefile  # the list is not repeated there

    def dry_run(*variables: str) -> str:
        # -n: print the commands; a virtualenv that "exists" (-o), so nothing is installed;
        # --no-print-directory: under `make test` (MAKELEVEL 1) make would add "Entering directory"
        venv = "/nonexistent-venv"
        argv = ["make", "--no-print-directory", "-n", "-o", f"{venv}/.installed", f"VENV={venv}", "compare", *variables]
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout

    plain = dry_run()
    assert "bench peers --install" in plain and "bench compare --clients" in plain and "--targets" not in plain
    chosen = dry_run("COMPARE_TARGETS=embedded,redis")
    assert "bench peers --install --targets embedded,redis" in chosen
    assert chosen.rstrip().endswith("--targets embedded,redis")


@pytest.mark.parametrize(
    ("spec", "kind", "count", "address", "protocol"),
    [
        ("embedded", "embedded", None, None, "chat"),
        ("embedded-ws", "embedded-ws", None, None, "ws"),
        ("cluster", "cluster", 2, None, "chat"),
        ("cluster:3", "cluster", 3, None, "chat"),
        ("127.0.0.1:8000", None, None, ("127.0.0.1", 8000), "chat"),
        ("[::1]:9000", None, None, ("::1", 9000), "chat"),
        ("redis://127.0.0.1:6379", None, None, ("127.0.0.1", 6379), "redis"),
        ("nats://localhost:4222/", None, None, ("localhost", 4222), "nats"),
        ("mqtt://127.0.0.1:1883", None, None, ("127.0.0.1", 1883), "mqtt"),
        ("ws://127.0.0.1:8080/ws", None, None, ("127.0.0.1", 8080), "shootout"),
        ("ws://localhost", None, None, ("localhost", 80), "shootout"),
    ],
)
def test_every_target_form_is_read_by_the_one_parser(
    spec: str, kind: str | None, count: int | None, address: tuple[str, int] | None, protocol: str
) -> None:
    parsed = parse_target(spec)
    assert (parsed.kind.name if parsed.kind else None) == kind
    assert parsed.count == count
    assert ((parsed.address.host, parsed.address.port) if parsed.address else None) == address
    assert parsed.protocol() == protocol


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nonsense", "unknown target 'nonsense'"),
        ("cluster:0", "N from 1 to 16"),
        ("cluster:x", "N from 1 to 16"),
        ("cluster:99", "N from 1 to 16"),
        ("amqp://127.0.0.1:5672", "scheme amqp:// is not accepted"),
        ("127.0.0.1:", "port is missing"),
        ("127.0.0.1:99999", "bad port"),
        (":80", "no host name"),
        ("::1:8000", "in brackets"),
        ("redis://127.0.0.1", "no port"),
        ("ws://127.0.0.1:9/other", "path /ws only"),
        ("127.0.0.1:8000/x", "no path here"),
        ("10.0.0.1:6667", "not a loopback address"),
        ("redis://192.0.2.1:6379", "not a loopback address"),
    ],
)
def test_bad_target_specs_get_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(TargetError, match=message) as info:
        make_target(spec)
    assert "\n" not in str(info.value)


def test_the_cli_checks_target_lists_with_the_same_parser() -> None:
    assert cli.target_list("embedded,cluster:2,127.0.0.1:9,redis://127.0.0.1:1") == [
        "embedded",
        "cluster:2",
        "127.0.0.1:9",
        "redis://127.0.0.1:1",
    ]
    for bad in ("embedded,quake", "cluster:0", "embedded,embedded"):
        with pytest.raises(Exception, match=r"unknown target|N from 1|listed twice"):
            cli.target_list(bad)


def test_a_protocol_a_target_does_not_speak_is_refused() -> None:
    with pytest.raises(TargetError, match="target ngircd speaks irc"):
        parse_target("ngircd").protocol("ws")
    with pytest.raises(TargetError, match=r"a ws:// target speaks shootout or ws"):
        parse_target("ws://127.0.0.1:9/ws").protocol("chat")
    assert parse_target("embedded").protocol("shootout") == "shootout"
    assert parse_target("127.0.0.1:9").protocol("irc") == "irc"


def test_the_locust_and_websocket_hosts_use_the_same_parser() -> None:
    from bench.loadtest.support import parse_host
    from bench.wire.ws_adapter import parse_ws_url

    assert parse_host("tcp://[::1]:8001") == ("::1", 8001)
    assert parse_host("example.org") == ("example.org", 8000)
    assert parse_ws_url("127.0.0.1:8080") == ("127.0.0.1", 8080)
    with pytest.raises(ValueError, match="use tcp://HOST:PORT"):
        parse_host("ws://127.0.0.1:1")
    with pytest.raises(AddressError, match="use ws://HOST:PORT"):
        parse_ws_url("tcp://127.0.0.1:1")
    assert parse_address("x://h:1").scheme == "x"


def test_peers_are_the_union_of_what_the_chosen_targets_need() -> None:
    assert registry.needs(["embedded", "embedded-ws", "127.0.0.1:9"]) == []
    assert registry.needs(["embedded", "redis", "cluster:4"]) == [REDIS_SERVER]
    assert registry.needs(list(registry.COMPARE_DEFAULTS))[:2] == [NGIRCD, MINIIRCD]
    listing = subprocess.run(
        [sys.executable, "-m", "bench", "peers", "--targets", "embedded,cluster:2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert listing.splitlines()[0].startswith("redis-server: ") and len(listing.splitlines()) == 1
    nothing = subprocess.run(
        [sys.executable, "-m", "bench", "peers", "--targets", "embedded", "--install"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "none needed" in nothing


def test_the_readme_lists_every_target_kind_and_url_form() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| `--target` | what | needs |") :]
    table = table[: table.index("\n\n")]
    for kind in registry.KINDS:
        assert f"`{kind.spelling}`" in table or f"`{kind.name}`" in table, kind.name
        for package in kind.needs:
            assert f"`{package.debian or package.pypi}`" in table, package.name
        if kind.scheme is not None:
            assert f"`{kind.scheme.name}://" in table, kind.scheme.name
