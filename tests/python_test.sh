#!/usr/bin/env bash
# python_test: siam-server called from Python (Debian's python3-grpcio and python3-protobuf, stubs
# from protoc --python_out): tests/raw_client.py --check (Similarity and Train
# against the maths computed in Python, bad requests refused with INVALID_ARGUMENT naming the
# field, UNIMPLEMENTED for an unknown method, health SERVING), then its demo; and the server
# stopping cleanly on SIGTERM.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}/siam-server
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
script=$root/tests/raw_client.py
tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# the server is on 127.0.0.1: never go through a proxy
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY grpc_proxy no_grpc_proxy

fail() { echo "FAIL: $*"; exit 1; }
# state of process $1 ("" when gone, "Z" when exited but not yet reaped)
proc_state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null; }
server_log() { echo "--- siam-server stderr:"; tail -n 40 "$tmp/server.err"; }

# ---- prerequisites: Debian's packages, not skipped when missing ----
"$py" -c 'import grpc, google.protobuf' 2>"$tmp/import.err" ||
  fail "$py cannot import grpc and google.protobuf ($(tail -n 1 "$tmp/import.err")); run scripts/install-deps.sh (installs python3-grpcio python3-protobuf protobuf-compiler)"
command -v protoc >/dev/null ||
  fail "protoc not found; run scripts/install-deps.sh (installs protobuf-compiler)"
[ -x "$bin" ] || fail "$bin not built"

# ---- stubs ----
(cd "$root" && protoc -I proto --python_out="$tmp" proto/siam/v1/siam.proto \
  proto/grpc/health/v1/health.proto) || fail "protoc --python_out failed"

# ---- server on a free port ----
"$bin" --listen 127.0.0.1:0 >"$tmp/server.out" 2>"$tmp/server.err" &
pid=$!
port=""
for _ in $(seq 100); do # up to 10 s
  port=$(sed -nE 's/^siam-server [0-9]+\.[0-9]+\.[0-9]+ listening on 127\.0\.0\.1:([0-9]+)$/\1/p' \
    "$tmp/server.out")
  [ -n "$port" ] && break
  case "$(proc_state "$pid")" in "" | Z) server_log; fail "siam-server exited before listening" ;; esac
  sleep 0.1
done
[ -n "$port" ] || { server_log; fail "no 'siam-server X.Y.Z listening on 127.0.0.1:PORT' line within 10 s"; }
echo "siam-server listening on 127.0.0.1:$port"

fails=0
echo "--- raw_client.py --check"
timeout 120 "$py" "$script" --server "127.0.0.1:$port" --stubs "$tmp" --check; rc=$?
[ $rc -eq 0 ] || { echo "FAIL: raw_client.py --check exited $rc"; fails=$((fails + 1)); }

echo "--- raw_client.py (demo)"
timeout 60 "$py" "$script" --server "127.0.0.1:$port" --stubs "$tmp" >"$tmp/demo.out" 2>&1; rc=$?
cat "$tmp/demo.out"
if [ $rc -ne 0 ]; then
  echo "FAIL: raw_client.py demo exited $rc"; fails=$((fails + 1))
elif ! grep -q '^health: SERVING$' "$tmp/demo.out" || ! grep -Eq '^  identical +0\.0000 +1\.0000 +yes$' "$tmp/demo.out"; then
  echo "FAIL: demo output lacks 'health: SERVING' or the identical pair at distance 0, score 1"
  fails=$((fails + 1))
fi

# ---- SIGTERM: the server exits 0 within 10 s ----
kill -TERM "$pid"
for _ in $(seq 100); do
  case "$(proc_state "$pid")" in "" | Z) break ;; esac
  sleep 0.1
done
case "$(proc_state "$pid")" in
  "" | Z)
    wait "$pid"; rc=$?
    pid=""
    if [ $rc -eq 0 ]; then echo "siam-server stopped on SIGTERM, exit 0"
    else echo "FAIL: siam-server exited $rc on SIGTERM, expected 0"; fails=$((fails + 1)); fi ;;
  *) echo "FAIL: siam-server still running 10 s after SIGTERM"; fails=$((fails + 1)) ;;
esac

[ $fails -eq 0 ] || { server_log; echo "python_test: $fails failure(s)"; exit 1; }
echo "python_test: all passed"
