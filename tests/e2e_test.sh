#!/usr/bin/env bash
# e2e_test: split training for real: one siam-server and siam-client processes on 127.0.0.1 on
# the real Fashion-MNIST.
#   1. two workers train the mlp for one epoch, each on its half of the training pairs (batch
#      128), while a third worker is killed with SIGKILL mid-stream: both finish, their loss
#      falls, each reaches ROC AUC >= 0.85 and accuracy (D <= m/2) >= 0.70 on the test pairs, and
#      the server is untouched by the killed stream;
#   2. SIGTERM while streams are open: the server exits 0 within its grace period and the
#      workers, told not to retry (--retry-for 0), stop with a clear message instead of hanging;
#   3. a worker with no server (--retry-for 0): a clear message and exit 1 within seconds.
# Workers that ride out a restart are restart_test.sh's.
# In the sanitizer build every process runs under ASan/UBSan, so leaks or errors fail it.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin

# ---- 1. two workers + one killed mid-stream --------------------------------------------------
start_server server
echo "server on port $port"
common=(--server "127.0.0.1:$port" --model mlp --epochs 1 --batch-size 128 --workers 2
        --data "$data" --json)
for i in 0 1; do
  "$bin/siam-client" "${common[@]}" --worker-index $i --metrics "$tmp/w$i.csv" \
    --checkpoint "$tmp/w$i.ckpt" >"$tmp/w$i.json" 2>"$tmp/w$i.log" &
  wpid[$i]=$!
  pids+=("${wpid[$i]}")
done
"$bin/siam-client" "${common[@]}" --worker-index 1 --worker-id victim >/dev/null 2>"$tmp/victim.log" &
victim=$!
pids+=("$victim")
# kill the victim once it is streaming (its first progress line), at most 60 s from now
for _ in $(seq 600); do
  grep -q 'epoch 1/1: step' "$tmp/victim.log" 2>/dev/null && break
  sleep 0.1
done
kill -9 "$victim"
wait "$victim" 2>/dev/null
for i in 0 1; do
  wait "${wpid[$i]}"
  rc[$i]=$?
done
sleep 0.5
for i in 0 1; do
  check "worker $i exits 0" "[ ${rc[$i]} -eq 0 ]"
  auc=$(json_field "$tmp/w$i.json" roc_auc)
  acc=$(json_field "$tmp/w$i.json" accuracy)
  pairs=$(json_field "$tmp/w$i.json" train_pairs)
  echo "     worker $i: $pairs training pairs, accuracy $acc, ROC AUC $auc"
  check "worker $i trained on half of the 119,980 pairs" "[ '$pairs' = 59990 ]"
  check "worker $i ROC AUC >= 0.85 ($auc)" "awk 'BEGIN{exit !($auc >= 0.85)}'"
  check "worker $i accuracy at m/2 >= 0.70 ($acc)" "awk 'BEGIN{exit !($acc >= 0.70)}'"
  first=$(grep '^step,' "$tmp/w$i.csv" | head -1 | cut -d, -f4)
  last=$(grep '^step,' "$tmp/w$i.csv" | tail -1 | cut -d, -f4)
  # a worker that joins late adopts weights the other has trained already, so its first logged
  # loss may be low: it must still fall (ROC AUC above checks that it learned)
  check "worker $i loss falls ($first -> $last)" "awk 'BEGIN{exit !($last < $first)}'"
  check "worker $i wrote its checkpoint" "head -c 8 '$tmp/w$i.ckpt' | grep -q SIAMCKPT"
done
check "server still running after the SIGKILL" "kill -0 $server_pid"
check "server logged the killed stream" "grep -q 'victim.*ended CANCELLED' '$tmp/server.log'"
check "server summarised both workers' streams" \
  "[ \$(grep -c 'ended OK: 469 batches, 59990 pairs' '$tmp/server.log') -eq 2 ]"

# ---- 2. SIGTERM with streams open ------------------------------------------------------------
for i in 0 1; do
  "$bin/siam-client" "${common[@]}" --epochs 5 --worker-index $i --retry-for 0 \
    >/dev/null 2>"$tmp/t$i.log" &
  tpid[$i]=$!
  pids+=("${tpid[$i]}")
done
for _ in $(seq 600); do
  grep -q 'epoch 1/5: step' "$tmp/t0.log" 2>/dev/null && grep -q 'epoch 1/5: step' "$tmp/t1.log" 2>/dev/null && break
  sleep 0.1
done
t0=$(date +%s.%N)
kill -TERM "$server_pid"
wait "$server_pid"
src=$?
t1=$(date +%s.%N)
check "server exits 0 on SIGTERM with streams open (rc $src)" "[ $src -eq 0 ]"
check "server stopped within grace + 3 s ($(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s)" \
  "awk 'BEGIN{exit !($t1 - $t0 < 5)}'"
check "server cancelled the open streams" "grep -q 'call(s) cancelled' '$tmp/server.log'"
for i in 0 1; do
  deadline=$(( $(date +%s) + 20 ))
  while kill -0 "${tpid[$i]}" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
  check "worker $i stopped by itself after the server went away" "! kill -0 ${tpid[$i]}"
  wait "${tpid[$i]}"
  trc=$?
  check "worker $i exits 1 (rc $trc)" "[ $trc -eq 1 ]"
  check "worker $i names the server and the status" \
    "grep -q \"siam-server at 127.0.0.1:$port\" '$tmp/t$i.log' && grep -qE 'UNAVAILABLE|CANCELLED' '$tmp/t$i.log'"
done

# ---- 3. no server ----------------------------------------------------------------------------
t0=$(date +%s.%N)
"$bin/siam-client" --server "127.0.0.1:$port" --epochs 1 --retry-for 0 --data "$data" \
  >/dev/null 2>"$tmp/none.log"
nrc=$?
t1=$(date +%s.%N)
check "worker without a server exits 1 (rc $nrc)" "[ $nrc -eq 1 ]"
check "worker without a server says how to fix it" \
  "grep -q 'cannot reach siam-server at 127.0.0.1:$port' '$tmp/none.log' && grep -q 'siam-server --listen' '$tmp/none.log'"
check "worker without a server gives up within 15 s" "awk 'BEGIN{exit !($t1 - $t0 < 15)}'"

check "no sanitizer reports in any log" "no_sanitizer_reports $tmp/*.log"
if [ $fails -ne 0 ]; then
  echo "---- server log"; tail -20 "$tmp/server.log"
  for f in "$tmp"/w*.log "$tmp"/t*.log; do echo "---- $f"; tail -5 "$f"; done
fi
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
