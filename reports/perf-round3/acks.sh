#!/usr/bin/env bash
# Delayed ACKs vs our TCP_NODELAY server: ss snapshots of the server's sockets mid-traffic.
# usage: ack.sh CLIENTS RATE quickack|no-quickack
set -u
PY=${PY:-python3}  # run from the project root, as root
C=$1; R=$2; Q=$3; PORT=$((20000 + RANDOM % 20000)); N=ack-$C-$R-$Q
taskset -c 1 $PY -m server --port $PORT --rate-limit 0 2>/dev/null &
SP=$!
sleep 1.5
$PY -m bench run --target 127.0.0.1:$PORT --server-pid $SP --harness-cpus 0 --$Q --clients $C --rate $R --duration 8 --warmup 1 --quiet --out /tmp/$N-$PORT > /tmp/$N.log 2>&1 &
RP=$!
sleep 6
for i in 1 2 3 4 5; do ss -tin state established "( sport = :$PORT )" > /tmp/$N.ss.$i; ss -tin state established "( dport = :$PORT )" > /tmp/$N.ssc.$i; sleep 0.5; done
wait $RP; kill $SP; wait $SP 2>/dev/null
grep -v "^\[" /tmp/$N.log | grep delivered | sed 's/.*delivered/delivered/' | cut -c1-200
cat /tmp/$N.ss.* | $PY -c "
import re,sys,statistics as st
t=sys.stdin.read()
un=[int(x) for x in re.findall(r'unacked:(\d+)',t)]; cw=[int(x) for x in re.findall(r' cwnd:(\d+)',t)]
socks=t.count('cwnd:')
print('server sockets', socks, 'with unacked segments', len(un), 'unacked max', max(un or [0]), 'median', st.median(un or [0]), 'cwnd median', st.median(cw or [0]), 'cwnd-limited', t.count('cwnd_limited'))
"
cat /tmp/$N.ssc.* | grep -o "ato:[0-9]*" | sort | uniq -c | sort -rn | head -3
