#!/usr/bin/env bash
# wire_test: siam-client --wire end to end. A real siam-server and one worker per encoding on the
# real data, the pair head (mlp, batch 857, one epoch): fp32 as the reference, then bf16, fp16
# and int8, each of which must exit 0 and reach a ROC AUC within 0.02 of fp32's; the set head
# (--recipe mlp, one short epoch) in int8; no averaging, so that every run starts afresh; --wire with an encoding that does not exist is a usage
# error naming the accepted ones. --sync-wire fp16 and bf16 average two workers. --in-flight 3 rides out a restart of the server. The gradients' values per encoding are checked against Python's
# own encoder and loss in raw_client.py --check (python_test).
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
. "$(dirname "$0")/e2e_lib.sh"
e2e_begin

start_server srv
echo "siam-server on 127.0.0.1:$port"
worker() { # NAME ARGS...: one worker's run, its JSON report in $tmp/NAME.json
  local name=$1; shift
  "$bin/siam-client" --server "127.0.0.1:$port" --data "$data" --retry-for 0 --threads 1 \
    --sync-every 0 \
    --json "$@" >"$tmp/$name.json" 2>"$tmp/$name.log"
}
declare -A auc
for w in fp32 bf16 fp16 int8; do
  worker "$w" --wire "$w" --epochs 1 --worker-id "wire-$w"
  rc=$?
  check "--wire $w: the worker exits 0" "[ $rc -eq 0 ]"
  [ $rc -eq 0 ] || tail -n 5 "$tmp/$w.log"
  auc[$w]=$(json_field "$tmp/$w.json" roc_auc)
  echo "     --wire $w: ROC AUC ${auc[$w]:-?}"
done
for w in bf16 fp16 int8; do
  check "--wire $w: ROC AUC ${auc[$w]:-?} within 0.02 of fp32's ${auc[fp32]:-?}" \
    "awk 'BEGIN{d = ${auc[$w]:-0} - ${auc[fp32]:-9}; exit !(d > -0.02 && d < 0.02)}'"
done
check "fp32 itself learns (ROC AUC ${auc[fp32]:-?} >= 0.85)" "awk 'BEGIN{exit !(${auc[fp32]:-0} >= 0.85)}'"

worker set --recipe mlp --wire int8 --epochs 1 --train-limit 6000 --test-limit 2000 --worker-id wire-set
rc=$?
check "--recipe mlp (set head) --wire int8: the worker exits 0" "[ $rc -eq 0 ]"
[ $rc -eq 0 ] || tail -n 5 "$tmp/set.log"
set_auc=$(json_field "$tmp/set.json" roc_auc)
check "the set head in int8 learns (ROC AUC ${set_auc:-?} >= 0.85)" "awk 'BEGIN{exit !(${set_auc:-0} >= 0.85)}'"

# --sync-wire: two workers average on a server of their own, one sending its weights in fp16, the
# other in bf16. Both take part in the rounds, send about 2 bytes per parameter a round (the
# server's parameter count) and learn.
main_port=$port main_pid=$server_pid
start_server sync --min-workers 2
spids=()
for s in fp16 bf16; do
  idx=0; [ $s = bf16 ] && idx=1
  worker "sync-$s" --sync-wire $s --sync-every 10 --batch-size 128 --workers 2 \
    --worker-index $idx --epochs 2 --train-limit 12000 --test-limit 2000 --worker-id "sync-$s" &
  spids+=($!)
  pids+=($!)
done
for s in fp16 bf16; do
  wait "${spids[0]}"
  rc=$?
  spids=("${spids[@]:1}")
  check "--sync-wire $s: the worker exits 0 (rc $rc)" "[ $rc -eq 0 ]"
  [ $rc -eq 0 ] || tail -n 5 "$tmp/sync-$s.log"
done
nparams=$(sed -n 's/.*global model from worker .*(\([0-9]*\) parameters).*/\1/p' "$tmp/sync.log" | head -1)
for s in fp16 bf16; do
  rounds=$(grep -c 'round [0-9]* adopted (2 worker' "$tmp/sync-$s.log")
  check "--sync-wire $s: rounds of both workers adopted ($rounds >= 10)" "[ ${rounds:-0} -ge 10 ]"
  per=$(sed -n 's/.*traffic [^ ]*\/SyncWeights: calls=\([0-9]*\) .*bytes_sent=\([0-9]*\).*/\1 \2/p' \
    "$tmp/sync-$s.log" | awk '{printf "%.0f", $2 / $1}')
  check "--sync-wire $s: ${per:-?} bytes sent a round for ${nparams:-?} parameters (2 each, +1 %)" \
    "awk 'BEGIN{exit !(${per:-0} >= 2 * ${nparams:-1} && ${per:-0} <= 2.02 * ${nparams:-0} + 200)}'"
  a=$(json_field "$tmp/sync-$s.json" roc_auc)
  # fp32 weights reach 0.90 in this setting
  check "--sync-wire $s: learned (ROC AUC ${a:-?} >= 0.88)" "awk 'BEGIN{exit !(${a:-0} >= 0.88)}'"
done
kill "$server_pid" 2>/dev/null
wait "$server_pid" 2>/dev/null
check "the averaging server logged no error" "! grep -q ' ERROR ' '$tmp/sync.log'"
port=$main_port server_pid=$main_pid

# --in-flight 3 in int8 through a server killed (SIGKILL) mid-epoch and restarted on its port:
# the worker sends its unanswered batches again on a new stream and ends with every step taken
# once (the step count of the epochs), a sane ROC AUC and no error
worker k3 --in-flight 3 --wire int8 --epochs 2 --retry-for 60 --worker-id wire-k3 &
kpid=$!
pids+=("$kpid")
if wait_for "$tmp/k3.log" 'epoch 1/2: step' 60; then
  sleep 0.5
  kill -9 "$server_pid"
  wait "$server_pid" 2>/dev/null
  "$bin/siam-server" --listen "127.0.0.1:$port" --grace 2 >"$tmp/srv2.out" 2>"$tmp/srv2.log" &
  server_pid=$!
  pids+=("$server_pid")
fi
wait "$kpid"
rc=$?
check "--in-flight 3 across a server restart: the worker exits 0 (rc $rc)" "[ $rc -eq 0 ]"
[ $rc -eq 0 ] || tail -n 5 "$tmp/k3.log"
check "... it sent its unanswered batches again" "grep -q 'were sent again on a new Train stream' '$tmp/k3.log'"
check "... and took every step once (2 x 140)" "grep -q 'done: 280 batches' '$tmp/k3.log'"
k3_auc=$(json_field "$tmp/k3.json" roc_auc)
check "... and learned (ROC AUC ${k3_auc:-?} >= 0.85)" "awk 'BEGIN{exit !(${k3_auc:-0} >= 0.85)}'"
"$bin/siam-client" --server "127.0.0.1:$port" --head set --in-flight 2 --data "$data" \
  --retry-for 0 --train-limit 1000 --test-limit 100 >/dev/null 2>"$tmp/setk.log"
rc=$?
check "--head set refuses --in-flight 2 (exit 1, got $rc) naming why" \
  "[ $rc -eq 1 ] && grep -q 'only --head pairs keeps several batches in flight' '$tmp/setk.log'"

"$bin/siam-client" --wire fp8 --server "127.0.0.1:$port" >/dev/null 2>"$tmp/bad.log"
rc=$?
check "--wire fp8 is a usage error (exit 2, got $rc)" "[ $rc -eq 2 ]"
check "... naming the encodings" "grep -q 'fp32|fp16|bf16|int8' '$tmp/bad.log'"
check "the servers logged no error" "! grep -q ' ERROR ' '$tmp/srv.log' '$tmp/srv2.log'"
check "no sanitizer reports" "no_sanitizer_reports '$tmp'/*.log"
echo "wire_test: $((checks - fails)) of $checks checks passed"
[ $fails -eq 0 ]
