#!/usr/bin/env bash
# wire_test: siam-client --wire end to end. A real siam-server and one worker per encoding on the
# real data, the pair head (mlp, batch 857, one epoch): fp32 as the reference, then bf16, fp16
# and int8, each of which must exit 0 and reach a ROC AUC within 0.02 of fp32's; the set head
# (--recipe mlp, one short epoch) in int8; no averaging, so that every run starts afresh; --wire with an encoding that does not exist is a usage
# error naming the accepted ones. The gradients' values per encoding are checked against Python's
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

"$bin/siam-client" --wire fp8 --server "127.0.0.1:$port" >/dev/null 2>"$tmp/bad.log"
rc=$?
check "--wire fp8 is a usage error (exit 2, got $rc)" "[ $rc -eq 2 ]"
check "... naming the encodings" "grep -q 'fp32|fp16|bf16|int8' '$tmp/bad.log'"
check "the server logged no error" "! grep -q ' ERROR ' '$tmp/srv.log'"
check "no sanitizer reports" "no_sanitizer_reports '$tmp'/*.log"
echo "wire_test: $((checks - fails)) of $checks checks passed"
[ $fails -eq 0 ]
