#!/usr/bin/env bash
# load_test: siam-server under sustained load and under callers that misbehave (issue 6).
#   1. load: siam-bench --suite load, 32 Train streams (batch 128 x dim 128, one thread each) and
#      4 Similarity callers (1/10/100/1000 pairs) for a 5 s warm-up + LOAD_SECONDS (20; 10 in
#      the sanitizer build): no call fails, every stream and caller makes progress, the server's
#      RSS is flat after the warm-up (last <= first + max(10%, 16 MB), and the second half's median
#      not above the first half's by more), Status answers afterwards;
#   2. a client that never reads its answers: 32 Train streams whose requests are yielded forever
#      (tests/load_client.py greedy) against a fresh server for 10 s. Flow control must stop
#      them: the server's answered-batch count stops moving, and its RSS grows by less than
#      16 MB + 1 MB per stream (+ 24 MB under ASan). A stream holds at most its 64 KiB receive
#      window, the request it is answering and one answer of 131 KB that the client does not
#      take: measured about 0.3 MB per stream plus 9 MB, against 1.1 GB with gRPC's BDP probing
#      on (lib/net/siam_rpc_server.c). Meanwhile a
#      well-behaved caller's Status and Similarity calls all answer, each within 1 s (2 s in
#      the sanitizer build). Then the greedy client is killed: the server logs its 32 streams
#      as ended (CANCELLED) and keeps serving;
#   3. messages above the limit, against a server with --max-message-mb 1: a Train batch and a
#      Similarity request just over 1 MiB (Python) get RESOURCE_EXHAUSTED naming the limit in
#      bytes and --max-message-mb; siam-client with a batch over the limit exits 1 saying so;
#      the server answers Status afterwards;
#   and every server stops on SIGTERM with exit 0 and no sanitizer report in its log.
# In the sanitizer build the servers run with a 16 MB ASan quarantine (the default 256 MB would
# show as RSS growth that is not the server's).
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
client=$root/tests/load_client.py
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin

python_stubs "$tmp"

sanitize=0
if is_sanitizer_build "$bin/siam-server"; then
  sanitize=1
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
fi
load_seconds=${LOAD_SECONDS:-$([ $sanitize -eq 1 ] && echo 10 || echo 20)}
prompt_ms=$([ $sanitize -eq 1 ] && echo 2000 || echo 1000)
t_start=$(date +%s)

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
stop_server() { # stop_server NAME PID: SIGTERM, exit 0 within 15 s, clean log
  local name=$1 pid=$2 rc
  kill -TERM "$pid"
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  wait "$pid"; rc=$?
  check "$name server exits 0 on SIGTERM (exit $rc)" "[ $rc -eq 0 ]"
  check "no sanitizer report in the $name server's log" "no_sanitizer_reports '$tmp/$name.log'"
}

# ---- 1. load -------------------------------------------------------------------------------
start_server load
load_pid=$server_pid
echo "--- load: siam-bench --suite load on 127.0.0.1:$port, 5 s warm-up + $load_seconds s"
"$bin/siam-bench" --suite load --server "127.0.0.1:$port" --server-pid "$load_pid" \
  --warmup 5 --seconds "$load_seconds" --json >"$tmp/load.out" 2>"$tmp/load.err"
rc=$?
grep -v '^{' "$tmp/load.out"
grep '^{' "$tmp/load.out" >"$tmp/load.json"
[ $rc -eq 0 ] || sed 's/^/     /' "$tmp/load.err" | head -n 20
check "siam-bench --suite load exits 0 (exit $rc)" "[ $rc -eq 0 ]"
j=$tmp/load.json
check "no failed call ($(json_field "$j" failures))" "[ '$(json_field "$j" failures)' = 0 ]"
check "every Train stream made progress (least: $(json_field "$j" stream_min_calls) exchanges)" \
  "[ '$(json_field "$j" streams_without_progress)' = 0 ] && [ '$(json_field "$j" stream_min_calls)' -gt 0 ]"
check "every Similarity caller made progress" "[ '$(json_field "$j" callers_without_progress)' = 0 ]"
check "the server's RSS is flat after the warm-up ($(json_field "$j" rss_first_mb) -> $(json_field "$j" rss_last_mb) MB, max $(json_field "$j" rss_max_mb))" \
  "[ '$(json_field "$j" rss_flat)' = 1 ]"
check "Status answers after the load" "[ '$(json_field "$j" status_after_ok)' = 1 ]"
check "no sanitizer report from siam-bench" "no_sanitizer_reports '$tmp/load.err'"
check "Status answers from Python too" \
  "'$py' '$client' probe --server 127.0.0.1:$port --stubs '$tmp' --seconds 0.1"
stop_server load "$load_pid"

# ---- 2. a client that never reads its answers ----------------------------------------------
streams=32
start_server greedy
greedy_pid=$server_pid greedy_port=$port
sleep 0.5
rss0=$(rss_mb "$greedy_pid")
echo "--- greedy: $streams Train streams that never read, 10 s; server RSS before: $rss0 MB"
"$py" "$client" greedy --server "127.0.0.1:$greedy_port" --stubs "$tmp" --streams $streams \
  >"$tmp/greedy.out" 2>"$tmp/greedy.err" &
greedy=$!
pids+=("$greedy")
"$py" "$client" probe --server "127.0.0.1:$greedy_port" --stubs "$tmp" --seconds 10 \
  --pid "$greedy_pid" >"$tmp/probe.json" 2>"$tmp/probe.err"
rc=$?
cat "$tmp/probe.err"
p=$tmp/probe.json
echo "     probe: $(cat "$p")"
echo "     greedy client, messages taken by gRPC (total, least and most per stream): $(tail -n 1 "$tmp/greedy.out")"
check "the greedy client is still running (it was stopped by flow control, not by an error)" \
  "kill -0 $greedy"
check "well-behaved Status and Similarity calls all answered ($(json_field "$p" calls) calls, exit $rc)" \
  "[ $rc -eq 0 ] && [ '$(json_field "$p" failures)' = 0 ] && [ '$(json_field "$p" calls)' -gt 20 ]"
check "... promptly (slowest $(json_field "$p" max_ms) ms <= $prompt_ms ms)" \
  "awk 'BEGIN { exit !($(json_field "$p" max_ms) <= $prompt_ms) }'"
check "the greedy streams are stalled: $(json_field "$p" global_step_last) batches answered, none in the last $(json_field "$p" global_step_still_s) s" \
  "awk 'BEGIN { exit !($(json_field "$p" global_step_still_s) >= 2 && $(json_field "$p" global_step_last) > 0) }'"
# 16 MB + 1 MB per stream; under ASan also its 16 MB quarantine, shadow memory and redzones
bound=$((16 + streams + (sanitize ? 24 : 0)))
growth=$(awk -v a="$rss0" -v b="$(json_field "$p" rss_max_mb)" 'BEGIN { printf "%.1f", b - a }')
echo "     server RSS: $rss0 MB before, max $(json_field "$p" rss_max_mb) MB during: growth $growth MB (bound $bound MB)"
check "flow control bounds the server's memory: RSS growth $growth MB < $bound MB" \
  "awk 'BEGIN { exit !($growth < $bound) }'"
kill -9 "$greedy"
wait "$greedy" 2>/dev/null
ended=0
for _ in $(seq 100); do # up to 10 s
  ended=$(grep -c 'stream of greedy-[0-9]* .* ended CANCELLED' "$tmp/greedy.log")
  [ "$ended" -ge $streams ] && break
  sleep 0.1
done
check "the server logs the $streams greedy streams as ended CANCELLED ($ended)" "[ '$ended' -eq $streams ]"
check "the server serves on (Status, Similarity)" \
  "'$py' '$client' probe --server 127.0.0.1:$greedy_port --stubs '$tmp' --seconds 0.5"
stop_server greedy "$greedy_pid"

# ---- 3. messages above the limit -----------------------------------------------------------
start_server big --max-message-mb 1
big_pid=$server_pid
echo "--- messages just over --max-message-mb 1"
"$py" "$client" oversize --server "127.0.0.1:$port" --stubs "$tmp" --limit-mb 1 >"$tmp/oversize.out" 2>&1
rc=$?
sed 's/^/     /' "$tmp/oversize.out"
check "Train and Similarity just over the limit: RESOURCE_EXHAUSTED naming it; Status afterwards" "[ $rc -eq 0 ]"
# 1,100 pairs of 128 floats: 1.13 MB, over the server's 1 MiB but within the client's 4
OPENBLAS_NUM_THREADS=1 timeout 120 "$bin/siam-client" --server "127.0.0.1:$port" --data "$data" \
  --model mlp --batch-size 1100 --epochs 1 --max-message-mb 4 >"$tmp/client.out" 2>"$tmp/client.err"
rc=$?
msg=$(grep 'error:' "$tmp/client.err" | tail -n 1)
echo "     siam-client: $msg"
check "siam-client with a batch over the server's limit exits 1 (exit $rc)" "[ $rc -eq 1 ]"
check "... saying RESOURCE_EXHAUSTED, the limit and --max-message-mb" \
  "echo \"\$msg\" | grep -q 'RESOURCE_EXHAUSTED.*limit of 1048576 bytes.*--max-message-mb'"
check "the server answers Status afterwards" \
  "'$py' '$client' probe --server 127.0.0.1:$port --stubs '$tmp' --seconds 0.1"
stop_server big "$big_pid"

echo "load_test: $checks checks, $fails failed, $(($(date +%s) - t_start)) s$([ $sanitize -eq 1 ] && echo ' (sanitizer build)')"
[ $fails -eq 0 ]
