"""Step load for Locust: N more users every T seconds up to ``-u``.

Locust picks up every ``LoadTestShape`` in the locustfile; :func:`bench.loadtest.support.step_users`
is the arithmetic, :class:`StepLoadShape` reads its knobs from the command
line (``--chat-step-users``, ``--chat-step-time``, ``-u`` as the maximum,
``-r`` as the spawn rate, ``-t`` as the total time).  It is only active with
``--chat-step-load`` (or when picked in the web UI with ``--class-picker``):
:func:`bench.loadtest.users.install` removes it otherwise.  Each step shows up
as a plateau in Locust's user-count chart, so the FANOUT response-time chart
reads as latency against the number of connected clients.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape

from bench.loadtest.support import step_end, step_users


class StepLoadShape(LoadTestShape):
    """``--chat-step-users`` more users every ``--chat-step-time`` seconds up
    to ``-u``, spawning at ``-r`` per second (default: a whole step per
    second); stops after ``-t`` or once the last step has run a full step."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        runner: Any = self.runner
        options = runner.environment.parsed_options if runner is not None else None
        per_step = int(getattr(options, "chat_step_users", 50))
        step_time = float(getattr(options, "chat_step_time", 10.0))
        max_users = int(getattr(options, "num_users", None) or per_step)
        spawn_rate = float(getattr(options, "spawn_rate", None) or per_step)
        run_time = getattr(options, "run_time", None)
        shape: Any = self  # LoadTestShape's helpers are untyped
        elapsed = float(shape.get_run_time())
        if run_time:
            if elapsed >= float(run_time):
                return None
        elif elapsed >= step_end(per_step, step_time, max_users):
            return None
        return step_users(elapsed, per_step, step_time, max_users), spawn_rate
