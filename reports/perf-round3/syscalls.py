"""Syscalls, context switches and CPU (perf task-clock) per delivery of one server: the server pinned
to CPU 1, the swarm on CPU 0, ``perf stat`` over 4 s of steady traffic.  From the project root, as root:

    python reports/perf-round3/syscalls.py CLIENTS RATE embedded|ngircd|miniircd
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.getcwd())  # the project root
from bench.swarm.pinning import pin_process
from bench.targets import make_target

clients, rate, name = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
PY = sys.executable
EV = "syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_select,syscalls:sys_enter_poll,syscalls:sys_enter_futex,context-switches,task-clock"
t = make_target(name)
host, port = t.start()
try:
    pin_process(t.pid, [1])
    out = f"/tmp/syscalls-{name}-{clients}x{int(rate)}-{port}"
    run = subprocess.Popen(
        [
            PY,
            "-m",
            "bench",
            "run",
            "--target",
            f"{host}:{port}",
            "--protocol",
            t.protocol,
            "--server-pid",
            str(t.pid),
            "--harness-cpus",
            "0",
            "--quickack",
            "--clients",
            str(clients),
            "--rate",
            str(rate),
            "--duration",
            "9",
            "--warmup",
            "1",
            "--quiet",
            "--out",
            out,
        ]
        + (["--connect-batch", str(t.connect_batch)] if t.connect_batch else []),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(4 if clients < 500 else 9)
    perf = subprocess.run(
        ["taskset", "-c", "0", "perf", "stat", "-x,", "-e", EV, "-p", str(t.pid), "--", "sleep", "4"],
        capture_output=True,
        text=True,
    )
    outtxt, _ = run.communicate(timeout=300)
finally:
    t.stop()
counts = {}
for line in perf.stderr.splitlines():
    parts = line.split(",")
    if len(parts) > 2 and parts[0].replace(".", "").isdigit():
        counts[parts[2].replace("syscalls:sys_enter_", "")] = float(parts[0])
per_s = rate * (clients - 1)
print(
    name,
    clients,
    rate,
    {k: round(v / 4 / per_s, 4) for k, v in counts.items() if v},
    "task-clock ms/s",
    round(counts.get("task-clock", 0) / 4, 1),
)
print(outtxt[-600:])
