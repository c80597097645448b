#!/usr/bin/env bash
# perf profile of our server (on-CPU samples, kernel and user) at one point, server on CPU 1, harness and perf on CPU 0.
# usage: perf-record.sh CLIENTS RATE NAME   (then: perf report -i /tmp/NAME.perf.data --sort dso)
set -u
PY=${PY:-python3}  # run from the project root, as root
C=$1; R=$2; N=$3; PORT=$((20000 + RANDOM % 20000))
taskset -c 1 $PY -m server --port $PORT --rate-limit 0 --max-clients 12000 2>/tmp/$N.server.log &
SP=$!
sleep 1.5
taskset -c 0 $PY -m bench run --target 127.0.0.1:$PORT --server-pid $SP --harness-cpus 0 --quickack --clients $C --rate $R --duration 9 --warmup 1 --quiet --out /tmp/$N-run-$PORT > /tmp/$N.run.log 2>&1 &
RP=$!
sleep $((C > 500 ? 6 : 3))
taskset -c 0 perf record -F 499 -g -p $SP -o /tmp/$N.perf.data -- sleep 5 > /tmp/$N.perf.log 2>&1
wait $RP
kill $SP; wait $SP 2>/dev/null
grep -v "^\[" /tmp/$N.run.log | tail -1 | cut -c1-300
