#!/usr/bin/env bash
# CPU per delivery of a server at one point, server on CPU 1 and harness on CPU 0, from `perf stat`
# (task-clock over 3 s of steady traffic): the floor server, ours, or Redis.
# usage: bash reports/perf-round6/floor.sh floor|floor-threads|embedded|redis [CLIENTS RATE]   (from the project root, as root)
# SARGS: more options for the harness, e.g. SARGS=--server-arg=--keepalive=0 (one more option for our server)
# SPY: the interpreter the floor server runs on (default: the harness's); `floor.sh server` runs ours on it
set -eu
T=$1; C=${2:-100}; R=${3:-300}; PY=${PY:-.venv/bin/python}; SPY=${SPY:-$PY}
OUT=$(mktemp -d)
if [ "$T" = floor ] || [ "$T" = floor-threads ] || [ "$T" = server ]; then
    PORT=$((20000 + RANDOM % 20000))
    if [ "$T" = server ]; then
        taskset -c 1 $SPY -m server --host 127.0.0.1 --port $PORT --rate-limit 0 --log-level WARNING 2>/dev/null &
    else
        PYTHONPATH=. taskset -c 1 $SPY reports/perf-round6/floor_server.py $PORT ${T#floor-} &
    fi
    SP=$!
    sleep 1
    TARGET=(--target 127.0.0.1:$PORT --server-pid $SP)
else
    TARGET=(--target $T --server-cpus 1)
fi
$PY -m bench run "${TARGET[@]}" ${SARGS:-} --harness-cpus 0 --quickack --clients $C --rate $R --duration 9 --warmup 1 \
    --quiet --out $OUT/run > $OUT/run.log 2>&1 &
RP=$!
sleep $((C > 500 ? 7 : 4))
case $T in floor* | server) ;; embedded) SP=$(pgrep -f -- "-m server" | head -1) ;; *) SP=$(pgrep -x ${T}-server | head -1) ;; esac
taskset -c 0 perf stat -e task-clock -p $SP -o $OUT/perf.txt -- sleep 3
wait $RP || true
case $T in floor* | server) kill $SP ;; esac
# deliveries in those 3 s: every client but the sender gets each line (Redis: every subscriber, sender too)
if [ "$T" = redis ]; then N=$((C * R * 3)); else N=$(((C - 1) * R * 3)); fi
awk -v t=$T -v n=$N '/task-clock/{gsub(",","",$1); printf "%-9s %6.2f us of CPU per delivery (task-clock)\n", t, $1*1000/n}' $OUT/perf.txt
grep -o "delivered [0-9/]* ([0-9.]*%)\|p99 [0-9.]*ms" $OUT/run.log | head -2 | tr '\n' ' '; echo
grep -q delivered $OUT/run.log || tail -5 $OUT/run.log
rm -rf $OUT
