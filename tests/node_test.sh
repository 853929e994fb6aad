#!/usr/bin/env bash
# node_test: siam-server called from Node.js (@grpc/grpc-js and @grpc/proto-loader from the npm
# registry, the .proto loaded at run time): examples/node/similarity.js --check (Similarity and
# Train against the maths computed in JavaScript, bad requests refused with INVALID_ARGUMENT
# naming the field, health SERVING), then its demo. Installs the example's node_modules with
# `npm ci` (from the committed package-lock.json) when they are missing; fails loudly, never
# skips, when node, npm or the registry is missing.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}/siam-server
root=$(cd "$(dirname "$0")/.." && pwd)
example=$root/examples/node
tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; exit 1; }
proc_state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null; }
server_log() { echo "--- siam-server stderr:"; tail -n 40 "$tmp/server.err"; }

# ---- prerequisites: not skipped when missing ----
command -v node >/dev/null || fail "node not found; run scripts/install-deps.sh (installs nodejs npm)"
command -v npm >/dev/null || fail "npm not found; run scripts/install-deps.sh (installs nodejs npm)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] 2>/dev/null || fail "node $(node --version) is too old; examples/node needs node >= 18"
[ -x "$bin" ] || fail "$bin not built"

# ---- node_modules: npm ci from the lock file, once (the registry is needed only then) ----
if [ ! -f "$example/node_modules/@grpc/grpc-js/package.json" ] ||
  [ ! -f "$example/node_modules/@grpc/proto-loader/package.json" ]; then
  echo "--- npm ci in examples/node (node_modules missing)"
  if ! (cd "$example" && timeout 300 npm ci --no-audit --no-fund) >"$tmp/npm.log" 2>&1; then
    tail -n 30 "$tmp/npm.log"
    fail "npm ci in $example failed (see above): the npm registry ($(npm config get registry 2>/dev/null)) must be reachable to install @grpc/grpc-js and @grpc/proto-loader; run 'npm ci' there by hand once it is"
  fi
  tail -n 3 "$tmp/npm.log"
fi

# the server is on 127.0.0.1: never go through a proxy (grpc-js honours these)
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY grpc_proxy no_grpc_proxy

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
echo "--- similarity.js --check"
timeout 120 node "$example/similarity.js" --server "127.0.0.1:$port" --check; rc=$?
[ $rc -eq 0 ] || { echo "FAIL: similarity.js --check exited $rc"; fails=$((fails + 1)); }

echo "--- similarity.js (demo)"
timeout 60 node "$example/similarity.js" --server "127.0.0.1:$port" >"$tmp/demo.out" 2>&1; rc=$?
cat "$tmp/demo.out"
if [ $rc -ne 0 ]; then
  echo "FAIL: similarity.js demo exited $rc"; fails=$((fails + 1))
elif ! grep -q '^health: SERVING$' "$tmp/demo.out" || ! grep -Eq '^  identical +0\.0000 +1\.0000 +yes$' "$tmp/demo.out"; then
  echo "FAIL: demo output lacks 'health: SERVING' or the identical pair at distance 0, score 1"
  fails=$((fails + 1))
fi

echo "--- similarity.js against no server"
timeout 30 node "$example/similarity.js" --server 127.0.0.1:1 >"$tmp/none.out" 2>&1; rc=$?
if [ $rc -ne 1 ] || ! grep -q 'cannot reach siam-server at 127.0.0.1:1' "$tmp/none.out"; then
  echo "FAIL: without a server, expected exit 1 and 'cannot reach siam-server', got exit $rc:"
  cat "$tmp/none.out"; fails=$((fails + 1))
fi

kill -TERM "$pid"
for _ in $(seq 100); do
  case "$(proc_state "$pid")" in "" | Z) break ;; esac
  sleep 0.1
done
kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=""

[ $fails -eq 0 ] || { server_log; echo "node_test: $fails failure(s)"; exit 1; }
echo "node_test: all passed"
