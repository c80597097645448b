"""Churn and reconnect storms end to end: the swarm against our server and a
broker on loopback, the counts checked (what was owed, what came, the
server's join and leave notices, who came back), and refusals at
``--max-clients`` under a storm counted, not crashed; failures counted by
reason with the run's names as NAME."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from bench.net.tls import TlsOptions
from bench.swarm import SwarmConfig, run_swarm
from bench.swarm.churn import failure_reason
from bench.targets import EmbeddedTarget, Security, certs
from bench.targets.packages import find_binary
from bench.wire.client import ClientError, WireClient
from bench.wire.credentials import Credentials, parse_credentials, single
from bench.workload.membership import Churn

pytestmark = pytest.mark.timeout(120)

PASSWORD = "s3cret-pw"

#: 20 clients, 2 of them sending 200 msg/s for 3 s after a 0.5 s warm-up.
SMALL: dict[str, Any] = {
    "clients": 20,
    "senders": 2,
    "rate": 200.0,
    "duration_s": 3.0,
    "warmup_s": 0.5,
    "progress": False,
    "workers": 2,
    "sample_interval_s": 0.2,
    "interval_s": 0.25,
}


def _consistent(doc: dict[str, Any]) -> None:
    """What every churn run's document must add up to."""
    d, churn = doc["deliveries"], doc["churn"]
    assert doc["completed"] is True, doc["notes"]
    assert doc["integrity"]["faults"] == 0, doc["integrity"]
    # the owed arrivals are the owed ones not lost; what else came is the boundary
    assert d["delivered"] - d["boundary"] == d["expected"] - churn["lost_measured"]
    assert d["delivered_ratio"] == 1.0
    # the labels split the run: steady + churned (and a cluster's paths), their expectations add up to the run's
    by_label: dict[str, Counter[str]] = {}
    for s in doc["labels"]:
        by_label.setdefault(s["values"]["membership"], Counter()).update(
            expected=s["expected"], delivered=s["delivered"]
        )
    assert set(by_label) == {"steady", "churned"}
    assert sum(s["expected"] for s in doc["labels"]) == d["expected"]
    assert by_label["churned"]["expected"] == churn["owed_measured"] > 0
    assert by_label["steady"]["delivered"] == by_label["steady"]["expected"] > 0
    assert churn["memberships"] > churn["replaced"]  # the first connections' memberships too


def test_churn_against_our_server_owes_exactly_and_every_notice_arrives() -> None:
    doc = run_swarm(SwarmConfig(churn=Churn(rate=10, mode="mixed", names="same"), **SMALL))
    _consistent(doc)
    churn = doc["churn"]
    leaves = sum(churn["leaves"].values())
    assert churn["leaves"].keys() <= {"quit", "reset"} and leaves >= 20  # 10/s from 0.5 s to 3 s (less the tail)
    assert churn["replaced"] == leaves == churn["joins_made"] == churn["leaves_made"]
    assert doc["connects"]["churn"]["count"] == leaves
    assert doc["connects"]["initial"]["count"] == 20 and doc["connects"]["churn"]["tls_us"] is None
    # the same names come back: a name the server still held is refused, counted, and retried
    assert sum(churn["failures"].get("churn", {}).values()) == churn["attempts"]["churn"] - leaves
    notices = churn["notices"]
    assert notices is not None and notices["receivers"] == 2  # the senders are the steady receivers
    assert notices["joins_seen"] == notices["joins_expected"] == 2 * leaves
    assert notices["leaves_seen"] == notices["leaves_expected"] == 2 * leaves
    assert doc["parameters"]["churn"]["summary"] == "churn 10/s (mixed, same names)"


@pytest.mark.parametrize("target", ["embedded", "mosquitto"])
def test_a_storm_drops_half_and_every_one_comes_back(target: str) -> None:
    if target == "mosquitto" and find_binary("mosquitto") is None:
        pytest.skip("mosquitto is not installed (run `make peers`: apt-get install mosquitto)")
    churn = Churn(storm_percent=50, storm_at_s=1.5, mode="reset", reconnect="backoff", backoff_base_s=0.05)
    doc = run_swarm(SwarmConfig(target=target, churn=churn, **SMALL))
    _consistent(doc)
    storm = doc["storm"]
    assert storm["seats"] == storm["dropped"] == 9  # half of the 18 receivers that do not send
    assert storm["back"] == 9 and storm["not_back"] == 0
    assert storm["time_to_register_us"]["count"] == 9
    assert 0 < storm["time_to_all_s"] < 1.5
    assert storm["at_s"] == pytest.approx(1.5, abs=0.05)
    assert doc["connects"]["storm"]["count"] == 9
    assert storm["attempts"] == 9 + sum(storm["failures"].values())
    assert set(storm["steady"]) >= {"during", "after"}
    assert storm["steady"]["during"]["latency_us"]["count"] > 0
    notices = doc["churn"]["notices"]
    if target == "embedded":
        # the steady receivers: the 2 senders and the 9 seats the storm left alone
        assert notices is not None and notices["receivers"] == 11
        assert notices["joins_seen"] == notices["joins_expected"] == 11 * 9
        assert notices["leaves_seen"] == notices["leaves_expected"] == 11 * 9
    else:
        assert notices is None and any("no join/leave notices" in n for n in doc["notes"])


def test_refusals_at_max_clients_under_a_storm_are_counted_not_crashed() -> None:
    """8 seats for 10 clients: 2 are refused at the start; a storm of every
    churnable seat sends all 8 back at once for the 6 places left, so at least
    2 are refused again ("server full"), counted by reason and retried."""
    churn = Churn(storm_percent=100, storm_at_s=1.0, mode="reset", reconnect="backoff", backoff_base_s=0.05)
    config = {**SMALL, "clients": 10, "workers": 1, "server_args": ("--max-clients", "8")}
    doc = run_swarm(SwarmConfig(churn=churn, **config))
    assert doc["connections"]["failed"] == 2, doc["connections"]
    assert all("server full" in reason for reason in doc["connections"]["failures"])
    storm = doc["storm"]
    assert storm["seats"] == 8 and storm["dropped"] == 6  # the 2 refused at the start had nothing to drop
    refused = sum(n for reason, n in storm["failures"].items() if "server full" in reason)
    assert refused >= 2, storm["failures"]
    assert storm["back"] <= 6 and storm["back"] + storm["not_back"] == 8
    assert doc["target"]["exit_code"] in (0, None)
    assert not any("Traceback" in line for line in doc["target"].get("stderr_tail", []))
    # the steady receivers (the senders) lost nothing while the others were refused
    steady = next(s for s in doc["labels"] if s["values"]["membership"] == "steady")
    assert steady["delivered"] == steady["expected"] > 0 and steady["integrity"]["faults"] == 0


def test_a_storm_on_one_cluster_node_the_others_keep_serving_and_names_come_back_on_another() -> None:
    """cluster:2: every connection of node 0's that may leave is reset at
    once; they reconnect under the same names to node 1, which may take them
    as soon as node 0 released them (well within the 3 s lease), while the
    clients on node 1 lose nothing."""
    if find_binary("redis-server") is None:
        pytest.skip("redis-server is not installed (run `make peers`: apt-get install redis-server)")
    churn = Churn(
        storm_percent=100,
        storm_at_s=1.5,
        storm_node=0,
        mode="reset",
        names="same",
        reconnect="backoff",
        backoff_base_s=0.05,
    )
    doc = run_swarm(SwarmConfig(target="cluster:2", churn=churn, **{**SMALL, "workers": 1}))
    _consistent(doc)
    storm = doc["storm"]
    assert storm["seats"] == storm["dropped"] == 9  # node 0 has clients 0, 2, ..., 18; 0 sends
    assert storm["back"] == 9 and storm["not_back"] == 0
    assert storm["time_to_all_s"] < 3.0  # the name lease (server/backplane/leases.py)
    by_label = {s["label"]: s for s in doc["labels"]}
    steady_on_1 = [s for key, s in by_label.items() if "membership=steady" in key]
    assert steady_on_1 and all(s["integrity"]["faults"] == 0 for s in steady_on_1)
    assert doc["parameters"]["churn"]["storm_node"] == 0


def test_churn_over_tls_resumes_logs_in_and_quits_inside_tls() -> None:
    """Churn over TLS (issue 25) with --tls-resume and a login per name (our
    server's accounts, the names a --credentials file's): the replacements
    handshake with the session of an earlier connection, log in, and are owed
    exactly; their quits are TLS records the server reads as ``/quit`` (a
    watcher over TLS sees every churn leave as ``(quit)``)."""
    names = [f"user{i}" for i in range(SMALL["clients"])]
    logins = parse_credentials("".join(f"{n}:{PASSWORD}\n" for n in names), "logins.txt")
    with EmbeddedTarget(security=Security(tls=True, logins=single(None, PASSWORD))) as server:
        server.enroll([(name, PASSWORD) for name in [*names, "watcher"]])
        tls = TlsOptions(ca_file=certs.ca_file(), resume=True)
        address = (server.host, server.port)
        watcher = WireClient.connect(address, "watcher", tls=tls, credentials=Credentials(None, PASSWORD))
        try:
            churn = Churn(rate=10, mode="quit", names="same")
            doc = run_swarm(
                SwarmConfig(target=f"{server.host}:{server.port}", tls=tls, logins=logins, churn=churn, **SMALL)
            )
            quits = Counter(
                line.split(b" left the chat ")[0].rsplit(b" ", 1)[-1]
                for line in _lines_until_idle(watcher)
                if line.endswith(b" left the chat (quit)")
            )
        finally:
            watcher.close()
    _consistent(doc)
    leaves = doc["churn"]["leaves"]["quit"]
    assert leaves >= 20 and doc["churn"]["replaced"] == leaves
    assert sum(quits.values()) == leaves and set(quits) <= {n.encode() for n in names}
    setup = doc["connects"]["churn"]
    assert setup["count"] == leaves and setup["tls_us"] is not None and setup["tls_us"]["count"] == leaves
    assert setup["tls_resumed_us"] is not None and setup["tls_resumed_us"]["count"] >= 1  # the sessions offered resumed
    assert sum(setup["tls"].values()) == leaves
    notices = doc["churn"]["notices"]  # the seats' names are the file's: still counted
    assert notices is not None and notices["joins_seen"] == notices["joins_expected"] == 2 * leaves
    assert notices["leaves_seen"] == notices["leaves_expected"] == 2 * leaves


def _lines_until_idle(client: WireClient, idle_s: float = 0.5) -> list[bytes]:
    """What ``client`` received until nothing more came for ``idle_s``."""
    lines: list[bytes] = []
    while True:
        try:
            lines.append(client.next_line(time.monotonic() + idle_s))
        except ClientError:
            return lines


def test_the_runs_names_in_a_reason_are_one_reason_and_other_text_is_kept() -> None:
    reasons = [
        "Name taken: cb7r3",
        "Name taken: cb7r4",
        "433 * cb7p12 :Nickname is already in use",
        "server full",
        "Name taken: alice",  # not this run's name: kept
    ]
    counted = Counter(failure_reason(reason, "cb7") for reason in reasons)
    assert counted == {
        "Name taken: NAME": 2,
        "433 * NAME :Nickname is already in use": 1,
        "server full": 1,
        "Name taken: alice": 1,
    }
    assert failure_reason("Name taken: cb7r3", "") == "Name taken: cb7r3"  # no stem: nothing replaced
    assert failure_reason("bad (a.b+c)", "a.b+") == "bad (NAME"  # the stem is text, not a pattern
