#!/usr/bin/env bash
# valgrind_test: siam-server and one siam-client end to end, both under valgrind's memcheck
# (--leak-check=full): the worker trains the mlp for one epoch on a small prefix of
# Fashion-MNIST (a few dozen steps) with weight averaging every 5 steps (SyncWeights), both
# write checkpoints, then tests/raw_client.py asks the server for image and
# embedding Similarity, Status and the health check, and the server stops on SIGTERM. Fails on
# any memcheck error (invalid read or write, use of uninitialised memory, bad free) and on any
# definitely lost block, in either process. No suppressions: none were needed (gRPC, abseil,
# OpenBLAS and protobuf-c report nothing here).
# Skipped (exit 77) in the sanitizer build: valgrind and ASan do not mix.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin

for prog in siam-server siam-client; do
  if is_sanitizer_build "$bin/$prog"; then
    echo "skip: $bin/$prog is a sanitizer build (valgrind and ASan do not mix)"
    exit 77
  fi
done
command -v valgrind >/dev/null ||
  { echo "FAIL: valgrind not found; run scripts/install-deps.sh (installs valgrind)"; exit 1; }
"$py" -c 'import grpc, google.protobuf' 2>/dev/null ||
  { echo "FAIL: $py cannot import grpc; run scripts/install-deps.sh"; exit 1; }
(cd "$root" && protoc -I proto --python_out="$tmp" proto/siam/v1/siam.proto \
  proto/grpc/health/v1/health.proto) || { echo "FAIL: protoc --python_out failed"; exit 1; }

export OPENBLAS_NUM_THREADS=1
# memcheck: exit code 99 when it found an error or a definitely lost block (the program's own
# otherwise); each program's report goes to $tmp/NAME.vg (a command, not a function, so that $!
# of a background run is valgrind's own pid)
vg=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite --error-exitcode=99 --num-callers=40)

t0=$(date +%s)
"${vg[@]}" --log-file="$tmp/server.vg" "$bin/siam-server" --listen 127.0.0.1:0 --grace 5 --min-workers 1 --sync-timeout 60 \
  --checkpoint "$tmp/global.ckpt" >"$tmp/server.out" 2>"$tmp/server.log" &
server_pid=$!
pids+=("$server_pid")
port=""
for _ in $(seq 600); do # valgrind starts slowly: up to 60 s
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/server.out")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { echo "FAIL: siam-server did not start"; cat "$tmp/server.log" "$tmp/server.vg"; exit 1; }
echo "siam-server (memcheck) on port $port after $(($(date +%s) - t0)) s"

"${vg[@]}" --log-file="$tmp/client.vg" "$bin/siam-client" --server "127.0.0.1:$port" --model mlp --epochs 1 --batch-size 16 \
  --train-limit 400 --test-limit 100 --sync-every 5 --worker-id vg-worker --threads 1 \
  --data "$data" --checkpoint "$tmp/worker.ckpt" --json >"$tmp/client.json" 2>"$tmp/client.log"
crc=$?
steps=$(sed -n 's/.*done: \([0-9]*\) batches.*/\1/p' "$tmp/client.log")
rounds=$(sed -n 's/.* \([0-9]*\) averaging round(s).*/\1/p' "$tmp/client.log")
echo "siam-client (memcheck): exit $crc, ${steps:-?} steps, ${rounds:-?} averaging rounds, $(($(date +%s) - t0)) s"
check "siam-client exits 0 under memcheck (rc $crc; 99 = memcheck errors)" "[ $crc -eq 0 ]"
check "the worker trained a few dozen steps (${steps:-none})" "[ '${steps:-0}' -ge 20 ]"
check "the worker averaged weights with SyncWeights (${rounds:-no} rounds)" "[ '${rounds:-0}' -ge 4 ]"

timeout 120 "$py" "$root/tests/raw_client.py" --server "127.0.0.1:$port" \
  --stubs "$tmp" --images 0:1,2:3,5:5 --data "$data" >"$tmp/images.out" 2>&1
check "image Similarity with the global model (rc $?)" \
  "grep -Eq 'test images +5 and +5: distance 0\\.000000' '$tmp/images.out'"
timeout 120 "$py" "$root/tests/raw_client.py" --server "127.0.0.1:$port" \
  --stubs "$tmp" >"$tmp/demo.out" 2>&1
check "embedding Similarity, Status and health (rc $?)" \
  "grep -q '^health: SERVING\$' '$tmp/demo.out' && grep -Eq '^  identical +0\\.0000 +1\\.0000 +yes\$' '$tmp/demo.out'"

kill -TERM "$server_pid"
for _ in $(seq 600); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
wait "$server_pid"
src=$?
check "siam-server exits 0 on SIGTERM under memcheck (rc $src; 99 = memcheck errors)" "[ $src -eq 0 ]"
check "siam-server wrote the global model at shutdown" "head -c 8 '$tmp/global.ckpt' | grep -q SIAMCKPT"

for name in server client; do
  summary=$(grep -h 'ERROR SUMMARY' "$tmp/$name.vg" | tail -1 | sed 's/^==[0-9]*== //')
  lost=$(grep -h 'definitely lost:' "$tmp/$name.vg" | tail -1 | sed 's/^==[0-9]*== *//')
  echo "     $name: ${summary:-no summary}; ${lost:-no leaks (all heap blocks freed)}"
  check "memcheck: no errors in $name" "grep -q 'ERROR SUMMARY: 0 errors' '$tmp/$name.vg'"
  check "memcheck: nothing definitely lost in $name" \
    "! grep -q 'definitely lost: [1-9]' '$tmp/$name.vg'"
done
echo "total $(($(date +%s) - t0)) s"
if [ $fails -ne 0 ]; then
  for f in "$tmp"/*.vg; do echo "---- $f"; grep -v '^==[0-9]*== *$' "$f" | tail -60; done
  echo "---- server log"; tail -20 "$tmp/server.log"
  echo "---- client log"; tail -20 "$tmp/client.log"
  cat "$tmp/images.out" "$tmp/demo.out"
fi
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
