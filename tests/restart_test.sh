#!/usr/bin/env bash
# restart_test: workers ride out a siam-server that goes away, for real: siam-server and
# siam-client processes on 127.0.0.1, the real Fashion-MNIST.
#   1. a worker started while no server listens, with --retry-for 2, retries, then gives up after
#      about 2 s (exit 1) with a message naming the server;
#   2. two workers average (--min-workers 2, --sync-every 5) while the server checkpoints every
#      round: the server is killed (SIGKILL, often in the middle of a checkpoint write) and
#      restarted on the same port with --resume, killed again at once, restarted, later stopped
#      (SIGTERM) and restarted again. Both workers log the outages and the reconnects, finish
#      every epoch (exit 0) with the step count of an uninterrupted run (siam-train on the same
#      shard; the done line, the metrics CSV and the worker's checkpoint all say so), never see
#      a round number go backwards, and end with a sane accuracy; the server's final model is the
#      last worker's; every restart loaded the checkpoint, and no temp file is left;
#   3. a worker started before its server waits for it, joins, waits for the second worker
#      (--min-workers 2), rides out a SIGKILL of the server during that wait, and both workers
#      train once the second one starts;
#   4. a server that comes back with another loss (--margin 2) is refused: the worker stops with
#      a message saying what changed instead of training on under a different loss;
#   5. permanent errors are not retried (--retry-for 60): a model mismatch (FAILED_PRECONDITION)
#      and a batch above the message limit (RESOURCE_EXHAUSTED) exit 1 within seconds; a
#      truncated checkpoint stops --resume with a message naming the file.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
now() { date +%s.%N; }
secs() { awk "BEGIN{printf \"%.1f\", $2 - $1}"; }
# ckpt_field FILE: "round step sha256-of-params" of a checkpoint (lib/nn/siam_checkpoint.h)
ckpt_field() {
  "$py" - "$1" <<'EOF'
import struct, sys, hashlib
b = open(sys.argv[1], "rb").read()
spec_len = struct.unpack_from("<I", b, 12)[0]
off = 16 + spec_len
step, rnd, n_params, n_opt = struct.unpack_from("<QQQQ", b, off)
off += 32
print(rnd, step, hashlib.sha256(b[off:off + 4 * n_params]).hexdigest())
EOF
}
# restart NAME: siam-server on the same port from the checkpoint (start_server's --listen
# 127.0.0.1:0 is overridden: the last --listen counts)
restart() {
  start_server "$1" --listen "127.0.0.1:$port" --resume "$tmp/global.ckpt" "${srv_opts[@]}"
}

epochs=3
shard=(--model mlp --batch-size 64 --workers 2 --train-limit 20000 --test-limit 1000
       --data "$data")

# ---- 1. no server: retries for --retry-for, then a clear message -------------------------------
free_port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# the uninterrupted reference runs meanwhile (the waiting worker costs nothing)
"$bin/siam-train" "${shard[@]}" --worker-index 0 --epochs $epochs --json \
  --metrics "$tmp/ref.csv" >"$tmp/ref.json" 2>"$tmp/ref.log" &
ref_pid=$!
pids+=("$ref_pid")
t0=$(now)
"$bin/siam-client" --server "127.0.0.1:$free_port" --retry-for 2 --epochs 1 --data "$data" \
  >/dev/null 2>"$tmp/none.log"
nrc=$?
t1=$(now)
check "no server, --retry-for 2: exits 1 (rc $nrc)" "[ $nrc -eq 1 ]"
check "it retried, logging each attempt with the time used" \
  "[ \$(grep -c 'siam-server at 127.0.0.1:$free_port unavailable (Status: UNAVAILABLE.*); retrying in [0-9.]* s ([0-9.]* s of 2 s used)' '$tmp/none.log') -ge 3 ]"
check "it gave up after about 2 s ($(secs "$t0" "$t1") s)" \
  "awk 'BEGIN{d = $t1 - $t0; exit !(d >= 1.9 && d < 4.5)}'"
check "its message names the server, the budget and the fix" \
  "grep -q 'cannot reach siam-server at 127.0.0.1:$free_port (UNAVAILABLE: .*gave up after retrying for [0-9.]* s (--retry-for 2)). Is it running?' '$tmp/none.log'"
wait "$ref_pid"
check "the uninterrupted reference (siam-train, shard 0) exits 0" "[ $? -eq 0 ]"
ref_steps=$(sed -n 's/^epoch,[0-9]*,\([0-9]*\),.*/\1/p' "$tmp/ref.csv" | tail -n 1)

# ---- 2. kill, restart, stop, restart while two workers train -----------------------------------
srv_opts=(--min-workers 2 --checkpoint "$tmp/global.ckpt" --checkpoint-every 1 --sync-timeout 10)
start_server s1 "${srv_opts[@]}"
echo "     server on port $port; uninterrupted run: $ref_steps steps"
t_start=$(now)
for i in 0 1; do
  "$bin/siam-client" --server "127.0.0.1:$port" "${shard[@]}" --worker-index $i \
    --worker-id "rw$i" --epochs $epochs --sync-every 5 --retry-for 60 --json \
    --checkpoint "$tmp/w$i.ckpt" --metrics "$tmp/w$i.csv" >"$tmp/w$i.json" 2>"$tmp/w$i.log" &
  wpid[$i]=$!
  pids+=("${wpid[$i]}")
done
rounds_in() { grep -c 'averaging: round [0-9]* closed' "$1" 2>/dev/null; }

# SIGKILL after 20 rounds (about one a few ms: the checkpoint is being rewritten all the time)
wait_for "$tmp/s1.log" 'round 20 closed' 60 || echo "     (no round 20 on s1)"
{ kill -9 "$server_pid"; wait "$server_pid"; } 2>/dev/null
temps_after_kill=$(ls "$tmp" | grep -c '\.tmp\.')
killed_round=$(ckpt_field "$tmp/global.ckpt" | cut -d' ' -f1)
echo "     SIGKILL: checkpoint at round $killed_round, $temps_after_kill temp file(s) left"
restart s2
check "restart 1 (after SIGKILL) resumed from the checkpoint (round $killed_round)" \
  "grep -q 'resumed from $tmp/global.ckpt: round $killed_round' '$tmp/s2.log'"
# and SIGKILL again as soon as a round closed: the restart's first checkpoint writes
wait_for "$tmp/s2.log" 'averaging: round [0-9]* closed' 60
{ kill -9 "$server_pid"; wait "$server_pid"; } 2>/dev/null
killed_round2=$(ckpt_field "$tmp/global.ckpt" | cut -d' ' -f1)
restart s3
check "restart 2 (SIGKILL right after its first round) resumed (round $killed_round2)" \
  "grep -q 'resumed from $tmp/global.ckpt: round $killed_round2' '$tmp/s3.log'"
check "the restarted server took the workers back with their updates" \
  "wait_for '$tmp/s3.log' 'joined at round [0-9]* with an update' 60"

# SIGTERM after 30 more rounds: waiting updates are answered UNAVAILABLE, streams cancelled
for _ in $(seq 600); do [ "$(rounds_in "$tmp/s3.log")" -ge 30 ] && break; sleep 0.05; done
kill -TERM "$server_pid"
wait "$server_pid"
trc=$?
check "SIGTERM: the server exits 0 (rc $trc)" "[ $trc -eq 0 ]"
term_round=$(ckpt_field "$tmp/global.ckpt" | cut -d' ' -f1)
check "SIGTERM: the last round ($term_round) is checkpointed at shutdown" \
  "grep -q 'checkpoint of round $term_round (shutdown)' '$tmp/s3.log'"
restart s4
check "restart 3 (after SIGTERM) resumed from round $term_round" \
  "grep -q 'resumed from $tmp/global.ckpt: round $term_round' '$tmp/s4.log'"

for i in 0 1; do wait "${wpid[$i]}"; rc[$i]=$?; done
t_end=$(now)
echo "     training with 3 restarts took $(secs "$t_start" "$t_end") s"
for i in 0 1; do
  check "worker $i finishes every epoch (exit ${rc[$i]})" "[ ${rc[$i]} -eq 0 ]"
  check "worker $i logged the server going away and retried" \
    "grep -q 'siam-server at 127.0.0.1:$port unavailable (.*); retrying in' '$tmp/w$i.log'"
  check "worker $i logged the reconnects" "grep -q 'answered again after' '$tmp/w$i.log'"
  reconnects=$(sed -n 's/.*reconnects=\([0-9]*\).*/\1/p' "$tmp/w$i.log")
  check "worker $i's final line counts at least 3 reconnects (${reconnects:-none})" \
    "[ '${reconnects:-0}' -ge 3 ]"
  batches=$(sed -n 's/.*done: \([0-9]*\) batches.*/\1/p' "$tmp/w$i.log")
  csv_steps=$(sed -n 's/^epoch,[0-9]*,\([0-9]*\),.*/\1/p' "$tmp/w$i.csv" | tail -n 1)
  ck_steps=$(ckpt_field "$tmp/w$i.ckpt" | cut -d' ' -f2)
  check "worker $i: $batches batches answered, $csv_steps optimizer steps (metrics), $ck_steps (checkpoint) = the uninterrupted $ref_steps" \
    "[ '$batches' = '$ref_steps' ] && [ '$csv_steps' = '$ref_steps' ] && [ '$ck_steps' = '$ref_steps' ]"
  check "worker $i trained the reference's shard size" \
    "[ '$(json_field "$tmp/w$i.json" train_pairs)' = '$(json_field "$tmp/ref.json" train_pairs)' ]"
  sed -n 's/.* round \([0-9]*\) adopted.*/\1/p' "$tmp/w$i.log" >"$tmp/w$i.rounds"
  check "worker $i never saw a round number go backwards ($(wc -l <"$tmp/w$i.rounds") rounds)" \
    "sort -n -c '$tmp/w$i.rounds'"
  acc=$(json_field "$tmp/w$i.json" accuracy)
  check "worker $i's final (global) model is sane: accuracy $acc >= 0.80" \
    "awk 'BEGIN{exit !($acc >= 0.80)}'"
done
stop_rc=0
kill -TERM "$server_pid"; wait "$server_pid" || stop_rc=$?
check "the last server exits 0" "[ $stop_rc -eq 0 ]"
g=$(ckpt_field "$tmp/global.ckpt")
w0=$(ckpt_field "$tmp/w0.ckpt"); w1=$(ckpt_field "$tmp/w1.ckpt")
check "the server's final model is the last worker's, bit for bit" \
  "[ '${g##* }' = '${w0##* }' ] || [ '${g##* }' = '${w1##* }' ]"
check "no temp file left next to the checkpoints ($temps_after_kill after the first SIGKILL)" \
  "[ \$(ls '$tmp' | grep -c '\.tmp\.') -eq 0 ]"

# ---- 3. a worker before its server, a kill while it waits for --min-workers --------------------
port=$free_port
small=(--server "127.0.0.1:$port" --model mlp --batch-size 64 --workers 2 --train-limit 3000
       --test-limit 200 --epochs 1 --sync-every 10 --retry-for 60 --data "$data")
"$bin/siam-client" "${small[@]}" --worker-index 0 --worker-id early >/dev/null 2>"$tmp/early.log" &
early=$!
pids+=("$early")
wait_for "$tmp/early.log" 'retrying in' 30
start_server j1 --listen "127.0.0.1:$port" --min-workers 2
wait_for "$tmp/j1.log" 'worker early joined' 30
check "the early worker joined once the server was up" "grep -q 'worker early joined' '$tmp/j1.log'"
{ kill -9 "$server_pid"; wait "$server_pid"; } 2>/dev/null
start_server j2 --listen "127.0.0.1:$port" --min-workers 2
"$bin/siam-client" "${small[@]}" --worker-index 1 --worker-id late >/dev/null 2>"$tmp/late.log"
lrc=$?
wait "$early"
erc=$?
check "both workers finish (exit $erc and $lrc)" "[ $erc -eq 0 ] && [ $lrc -eq 0 ]"
check "the early worker waited for the server, then joined the restarted one" \
  "grep -q 'answered after' '$tmp/early.log' && grep -q 'answered again after .*: the join of step 0 was sent again' '$tmp/early.log'"
check "the restarted server waited for both workers" \
  "grep -q 'worker early joined at round 0 ([12] of 2 needed)' '$tmp/j2.log' && grep -q 'worker late joined at round 0 ([12] of 2 needed)' '$tmp/j2.log' && grep -q 'waiting for 1 more worker (1 of 2)' '$tmp/j2.log'"
check "same step count for both ($(sed -n 's/.*done: \([0-9]*\) batches.*/\1/p' "$tmp/early.log"))" \
  "[ \"\$(sed -n 's/.*done: \([0-9]*\) batches.*/\1/p' '$tmp/early.log')\" = \"\$(sed -n 's/.*done: \([0-9]*\) batches.*/\1/p' '$tmp/late.log')\" ]"
kill -TERM "$server_pid"; wait "$server_pid"

# ---- 4. the server comes back with another margin ----------------------------------------------
start_server m1
"$bin/siam-client" --server "127.0.0.1:$port" --model mlp --batch-size 64 --train-limit 20000 \
  --test-limit 200 --epochs 3 --sync-every 0 --retry-for 60 --data "$data" --worker-id m \
  >/dev/null 2>"$tmp/m.log" &
mpid=$!
pids+=("$mpid")
wait_for "$tmp/m.log" 'train: epoch 1/3' 60
{ kill -9 "$server_pid"; wait "$server_pid"; } 2>/dev/null
start_server m2 --listen "127.0.0.1:$port" --margin 2
t0=$(now)
wait "$mpid"
mrc=$?
t1=$(now)
check "a server back with --margin 2: the worker stops (rc $mrc, $(secs "$t0" "$t1") s after the restart)" \
  "[ $mrc -eq 1 ] && awk 'BEGIN{exit !($t1 - $t0 < 10)}'"
check "... saying what changed" \
  "grep -q 'the server came back with margin 2 and label convention similar, this worker trains with margin 1 and similar' '$tmp/m.log'"
kill -TERM "$server_pid"; wait "$server_pid"

# ---- 5. permanent errors: not retried ---------------------------------------------------------
start_server perm --model mlp
t0=$(now)
"$bin/siam-client" --server "127.0.0.1:$port" --model cnn --epochs 1 --train-limit 500 \
  --test-limit 100 --retry-for 60 --data "$data" --worker-id wrong >/dev/null 2>"$tmp/wrong.log"
wrc=$?
t1=$(now)
check "a model mismatch (FAILED_PRECONDITION) exits 1 at once (rc $wrc, $(secs "$t0" "$t1") s)" \
  "[ $wrc -eq 1 ] && awk 'BEGIN{exit !($t1 - $t0 < 3)}' && grep -q 'FAILED_PRECONDITION: model spec mismatch' '$tmp/wrong.log'"
check "... without a retry" "! grep -q 'retrying in' '$tmp/wrong.log'"
t0=$(now)
"$bin/siam-client" --server "127.0.0.1:$port" --epochs 1 --train-limit 3000 --test-limit 100 \
  --batch-size 2048 --max-message-mb 1 --retry-for 60 --data "$data" --worker-id big \
  >/dev/null 2>"$tmp/big.log"
brc=$?
t1=$(now)
check "a batch above the message limit (RESOURCE_EXHAUSTED) exits 1 at once (rc $brc, $(secs "$t0" "$t1") s)" \
  "[ $brc -eq 1 ] && awk 'BEGIN{exit !($t1 - $t0 < 3)}' && grep -q 'RESOURCE_EXHAUSTED' '$tmp/big.log'"
check "... without a retry, saying what to change" \
  "! grep -q 'retrying in' '$tmp/big.log' && grep -q 'raise --max-message-mb' '$tmp/big.log'"
kill -TERM "$server_pid"; wait "$server_pid"
head -c 100000 "$tmp/global.ckpt" >"$tmp/cut.ckpt"
"$bin/siam-server" --listen 127.0.0.1:0 --resume "$tmp/cut.ckpt" >/dev/null 2>"$tmp/cut.log"
crc=$?
check "--resume from a truncated checkpoint exits 1 naming the file (rc $crc)" \
  "[ $crc -eq 1 ] && grep -q '$tmp/cut.ckpt: truncated' '$tmp/cut.log'"

check "no sanitizer reports" "no_sanitizer_reports '$tmp'/*.log"
echo "$((checks - fails)) passed, $fails failed"
if [ $fails -ne 0 ]; then
  for f in s1 s2 s3 s4 w0 w1 none j1 j2 early late m wrong big; do echo "---- $f.log"; tail -n 6 "$tmp/$f.log" 2>/dev/null | cut -c1-300; done
  exit 1
fi
