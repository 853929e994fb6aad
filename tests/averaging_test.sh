#!/usr/bin/env bash
# averaging_test: weight averaging for real, siam-server and siam-client processes on 127.0.0.1 on
# the real Fashion-MNIST.
#   1. two workers with --sync-every train on halves of the pairs (the server waits for both with
#      --min-workers 2): after every round both hold exactly the server's average (the CRC-32 of
#      the parameters each logs per round is the server's, and the final checkpoints hold the
#      same bytes), and the final test accuracy is within 2 points of one worker (siam-train)
#      trained on all pairs for the same number of epochs;
#   2. Similarity with raw images (the Python example) before SIGTERM and after a restart with
#      --resume: identical answers; the round number continues from the checkpoint; and the
#      distances equal those of siam-client predict on the same checkpoint and images;
#   3. a worker whose model differs from the server's gets FAILED_PRECONDITION naming both specs;
#   4. a worker that hangs mid-round (SIGSTOP): the round closes after --sync-timeout without it;
#      once it is killed (SIGKILL) the other worker no longer waits, and finishes.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
stop_server() { kill -TERM "$server_pid"; wait "$server_pid"; }
# the parameter bytes of a checkpoint (lib/nn/siam_checkpoint.h layout)
params_of() {
  "$py" - "$1" <<'EOF'
import struct, sys, hashlib
b = open(sys.argv[1], "rb").read()
spec_len = struct.unpack_from("<I", b, 12)[0]
off = 16 + spec_len
step, rnd, n_params, n_opt = struct.unpack_from("<QQQQ", b, off)
off += 32
print(rnd, hashlib.sha256(b[off:off + 4 * n_params]).hexdigest())
EOF
}
python_stubs "$tmp"
similarity() { # similarity PORT OUT: Similarity with test images, from Python
  "$py" "$root/tests/raw_client.py" --server "127.0.0.1:$1" --stubs "$tmp" \
    --data "$data" --images 0:1,2:3,10:11,100:200,5:5 --json >"$2" 2>"$2.err"
}

# ---- 1. two workers average on halves of the pairs --------------------------------------------
epochs=2
start_server server --min-workers 2 --checkpoint "$tmp/global.ckpt" --checkpoint-every 5
echo "server on port $port"
similarity "$port" "$tmp/before-model.json"
check "image Similarity before any model: FAILED_PRECONDITION" \
  "grep -q 'FAILED_PRECONDITION' '$tmp/before-model.json.err'"
common=(--server "127.0.0.1:$port" --model mlp --epochs $epochs --batch-size 128 --workers 2
        --sync-every 20 --data "$data" --json)
for i in 0 1; do
  "$bin/siam-client" "${common[@]}" --worker-index $i --worker-id "avg-w$i" \
    --checkpoint "$tmp/w$i.ckpt" >"$tmp/w$i.json" 2>"$tmp/w$i.log" &
  wpid[$i]=$!
  pids+=("${wpid[$i]}")
  [ $i -eq 0 ] && sleep 1 # worker 0 waits, visibly, for worker 1
done
for i in 0 1; do wait "${wpid[$i]}"; rc[$i]=$?; done
"$bin/siam-train" --model mlp --epochs $epochs --batch-size 128 --data "$data" --json \
  >"$tmp/one.json" 2>"$tmp/one.log"
check "siam-train on all pairs exits 0" "[ $? -eq 0 ]"
check "server logged the wait for the second worker" \
  "grep -q 'waiting for 1 more worker (1 of 2)' '$tmp/server.log'"
for i in 0 1; do
  check "worker $i exits 0" "[ ${rc[$i]} -eq 0 ]"
  check "worker $i trained on half of the pairs" "[ '$(json_field "$tmp/w$i.json" train_pairs)' = 59990 ]"
done
# every round: the server's CRC of the average = each worker's CRC of what it adopted
sed -n 's/.*round \([0-9]*\) closed.*params_crc32=\([0-9a-f]*\).*/\1 \2/p' "$tmp/server.log" >"$tmp/server.rounds"
rounds=$(wc -l <"$tmp/server.rounds")
echo "     $rounds rounds"
check "server closed at least 2 x 469 / 20 rounds ($rounds)" "[ $rounds -ge 46 ]"
check "every round had both workers" \
  "[ \$(grep -c 'closed: 2 worker(s)' '$tmp/server.log') -eq $rounds ]"
for i in 0 1; do
  sed -n 's/.*round \([0-9]*\) adopted.*params_crc32=\([0-9a-f]*\).*/\1 \2/p' "$tmp/w$i.log" >"$tmp/w$i.rounds"
  check "worker $i adopted every round bit for bit (CRC-32 per round = the server's)" \
    "diff '$tmp/server.rounds' '$tmp/w$i.rounds'"
done
acc0=$(json_field "$tmp/w0.json" accuracy); acc1=$(json_field "$tmp/w1.json" accuracy)
one=$(json_field "$tmp/one.json" accuracy)
echo "     accuracy: worker 0 $acc0, worker 1 $acc1, one worker on all pairs $one"
check "both workers end with the same model (same accuracy)" "[ '$acc0' = '$acc1' ]"
check "averaged accuracy within 2 points of one worker on all pairs ($acc0 vs $one)" \
  "awk 'BEGIN{d = $acc0 - $one; exit !(d > -0.02 && d < 0.02)}'"

# ---- 2. image Similarity, SIGTERM, --resume ---------------------------------------------------
similarity "$port" "$tmp/sim1.json"
check "image Similarity answered (Python)" "grep -q '\"distance\"' '$tmp/sim1.json'"
check "an image compared with itself: distance 0, same" \
  "grep -q '\"left\": 5, \"right\": 5, \"distance\": 0.0, \"score\": 1.0, \"same\": true' '$tmp/sim1.json'"
stop_server
check "server exits 0 on SIGTERM" "[ $? -eq 0 ]"
last_round=$(tail -n 1 "$tmp/server.rounds" | cut -d' ' -f1)
check "checkpoint written at shutdown with round $last_round" \
  "grep -q 'checkpoint of round $last_round (shutdown)' '$tmp/server.log'"
g=$(params_of "$tmp/global.ckpt")
check "the server's checkpoint holds round $last_round" "[ '${g%% *}' = '$last_round' ]"
for i in 0 1; do
  w=$(params_of "$tmp/w$i.ckpt")
  check "worker $i's final parameters = the server's global model (bytes)" "[ '${w#* }' = '${g#* }' ]"
done
start_server resumed --resume "$tmp/global.ckpt"
check "resumed server names the checkpoint and round" \
  "grep -q 'resumed from .*: round $last_round' '$tmp/resumed.log'"
similarity "$port" "$tmp/sim2.json"
check "Similarity answers identical before and after --resume" "cmp '$tmp/sim1.json' '$tmp/sim2.json'"
if "$bin/siam-client" predict --help >/dev/null 2>&1; then
  for pair in "0 1" "100 200"; do
    set -- $pair
    "$bin/siam-client" predict --checkpoint "$tmp/global.ckpt" --data "$data" \
      --test-index "$1" "$2" --json >"$tmp/predict.json" 2>"$tmp/predict.err"
    mine=$(json_field "$tmp/predict.json" distance)
    theirs=$("$py" -c "import json,sys; d=json.load(open(sys.argv[1])); print([p['distance'] for p in d['pairs'] if p['left']==$1 and p['right']==$2][0])" "$tmp/sim1.json")
    check "server's image distance $1:$2 = siam-client predict's ($theirs vs $mine)" \
      "awk 'BEGIN{d = $theirs - $mine; if (d < 0) d = -d; exit !(d <= 1e-5 * (1 + $mine))}'"
  done
fi
# one more worker on the resumed server: the rounds continue from the checkpoint
"$bin/siam-client" --server "127.0.0.1:$port" --model mlp --epochs 1 --batch-size 128 \
  --train-limit 3000 --test-limit 500 --sync-every 10 --data "$data" --worker-id late \
  >/dev/null 2>"$tmp/late.log"
check "a worker on the resumed server exits 0" "[ $? -eq 0 ]"
check "the first round after resume is $((last_round + 1))" \
  "grep -q 'round $((last_round + 1)) adopted' '$tmp/late.log'"

# ---- 3. a different model: FAILED_PRECONDITION with both specs ---------------------------------
"$bin/siam-client" --server "127.0.0.1:$port" --model cnn --epochs 1 --train-limit 500 \
  --test-limit 100 --data "$data" --worker-id wrong >/dev/null 2>"$tmp/wrong.log"
wrc=$?
check "a cnn worker against the mlp global model exits 1" "[ $wrc -eq 1 ]"
check "its message says FAILED_PRECONDITION and names both specs" \
  "grep -q 'FAILED_PRECONDITION' '$tmp/wrong.log' && grep -q 'conv3x3x32' '$tmp/wrong.log' && grep -q 'dense128 relu dropout0.5' '$tmp/wrong.log'"
stop_server
check "resumed server exits 0" "[ $? -eq 0 ]"

# ---- 4. a worker hangs mid-round, then is killed ----------------------------------------------
timeout_s=3
start_server hang --min-workers 2 --sync-timeout $timeout_s
small=(--server "127.0.0.1:$port" --model mlp --epochs 3 --batch-size 64 --workers 2
       --train-limit 12000 --test-limit 1000 --sync-every 10 --data "$data")
"$bin/siam-client" "${small[@]}" --worker-index 0 --worker-id steady >/dev/null 2>"$tmp/steady.log" &
steady=$!
"$bin/siam-client" "${small[@]}" --worker-index 1 --worker-id hung >/dev/null 2>"$tmp/hung.log" &
hung=$!
pids+=("$steady" "$hung")
for _ in $(seq 600); do
  grep -q 'round 3 adopted' "$tmp/hung.log" 2>/dev/null && break
  sleep 0.1
done
kill -STOP "$hung"
t0=$(date +%s.%N)
for _ in $(seq 300); do
  grep -q 'closed after the sync timeout' "$tmp/hang.log" && break
  sleep 0.1
done
t1=$(date +%s.%N)
check "the round closed after the sync timeout without the hung worker" \
  "grep -q 'closed after the sync timeout: 1 worker(s) (steady).*missing: hung' '$tmp/hang.log'"
check "it closed within the timeout + 2 s of the hang ($(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s)" \
  "awk 'BEGIN{exit !($t1 - $t0 < $timeout_s + 2)}'"
kill -9 "$hung"
wait "$hung" 2>/dev/null
wait "$steady"
src=$?
check "the steady worker finishes (exit 0)" "[ $src -eq 0 ]"
check "its rounds after the kill did not wait for the dead worker" \
  "[ \$(grep 'adopted' '$tmp/steady.log' | tail -n 3 | grep -c 'waited [0-2]\.') -eq 3 ]"
stop_server
check "server exits 0" "[ $? -eq 0 ]"
check "no sanitizer reports" "no_sanitizer_reports '$tmp'/*.log"

echo "$((checks - fails)) passed, $fails failed"
if [ $fails -ne 0 ]; then
  for f in server resumed hang w0 w1 steady; do echo "---- $f.log"; tail -n 8 "$tmp/$f.log" 2>/dev/null; done
  exit 1
fi
