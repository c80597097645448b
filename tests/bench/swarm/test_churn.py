"""The churn driver's failure reasons: counted by reason, the run's names as NAME."""

from __future__ import annotations

from collections import Counter

from bench.swarm.churn import failure_reason


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
