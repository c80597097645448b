"""Per-client flood control: a token bucket with IRC-style "fakelag".

Every line costs one token; the bucket holds ``burst`` tokens and refills at
``rate`` per second.  A line that finds the bucket empty is *excess*: the
reader waits until a token is there (so a fast sender is slowed to ``rate``
by TCP back-pressure, and no line is lost), and the client is warned once.
A client that keeps going past ``burst`` excess lines without letting the
bucket fill up again is flooding on purpose and is disconnected.
"""

from __future__ import annotations

import time
from enum import Enum


class Verdict(Enum):
    OK = "ok"
    WARN = "warn"  # first excess line of an episode: tell the client, then wait
    WAIT = "wait"  # excess line: wait ``delay`` seconds
    FLOOD = "flood"  # too much excess: disconnect


class TokenBucket:
    __slots__ = ("_stamp", "_tokens", "burst", "delay", "excess", "rate")

    def __init__(self, rate: float, burst: int, clock: float | None = None) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic() if clock is None else clock
        self.excess = 0
        #: Seconds to wait before acting on the line just judged WARN/WAIT.
        self.delay = 0.0

    def take(self, now: float | None = None) -> Verdict:
        now = time.monotonic() if now is None else now
        tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if tokens >= self.burst:
            self.excess = 0  # the client paused long enough: a new episode
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            self.delay = 0.0
            return Verdict.OK
        self.excess += 1
        if self.excess > self.burst:
            return Verdict.FLOOD
        self.delay = (1.0 - tokens) / self.rate
        # The token this line waits for is spent on it.
        self._tokens = tokens - 1.0
        return Verdict.WARN if self.excess == 1 else Verdict.WAIT
