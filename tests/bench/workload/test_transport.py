"""The ``transport`` label dimension: a run over TLS labels its deliveries
``transport=tls``, a plaintext run has no such label, and a plan with both
kinds of receiver labels each delivery by its receiver's transport."""

from __future__ import annotations

from bench.workload import Client, one_room
from bench.workload.labels import expected_by_label, label_key, routes


def plan(transports: list[str]):  # type: ignore[no-untyped-def]
    clients = [Client(cid, f"c{cid}", True, transport=t) for cid, t in enumerate(transports)]
    return one_room(clients, {0: 0})


def test_a_plaintext_run_has_no_transport_label() -> None:
    assert label_key(plan(["plain"] * 3), 0, 1) == ""


def test_a_tls_run_labels_every_delivery_tls() -> None:
    p = plan(["tls"] * 3)
    assert {label_key(p, 0, cid) for cid in (1, 2)} == {"transport=tls"}
    assert expected_by_label(p, {0: 10}, {1, 2}) == {"transport=tls": 20}


def test_a_mixed_run_labels_each_delivery_by_its_receiver() -> None:
    p = plan(["tls", "plain", "tls", "plain"])  # the sender (0) is over TLS
    assert label_key(p, 0, 1) == "transport=plain" and label_key(p, 0, 2) == "transport=tls"
    keys, route = routes(p, [1, 2, 3])
    assert sorted(keys) == ["transport=plain", "transport=tls"]
    assert keys[route[2][0]] == "transport=tls" and keys[route[3][0]] == "transport=plain"
    assert expected_by_label(p, {0: 5}, {1, 2, 3}) == {"transport=plain": 10, "transport=tls": 5}
