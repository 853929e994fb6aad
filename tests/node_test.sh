#!/usr/bin/env bash
# node_test: examples/node/similarity.js, the short user of the Node client library
# (clients/node, require('siam-client')), against real siam-servers: its demo (Status, health,
# the distances, scores and verdicts of four pairs), no server (exit 1, "cannot reach"), a server
# with a token (UNAUTHENTICATED with the server's message without it, the demo with it) and bad
# usage (exit 2); examples/node/few_shot.js against a server with a model and an empty gallery
# (five Bags and five Ankle boots added under new labels, ten searches, a count per class) and
# against one without a model (FAILED_PRECONDITION with the server's message). The library's own
# tests, and the raw Similarity/Train checks this test ran through the example's former --check
# mode, are node_client_test (clients/node/test).
# Installs clients/node's node_modules (`npm ci` from its committed package-lock.json) and the
# example's (`npm ci`: a link to clients/node) when they are missing; fails loudly, never skips,
# when node, npm or the registry is missing.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
root=$(cd "$(dirname "$0")/.." && pwd)
example=$root/examples/node
lib=$root/clients/node
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin

fail() { echo "FAIL: $*"; exit 1; }

# ---- prerequisites: not skipped when missing ----
command -v node >/dev/null || fail "node not found; run scripts/install-deps.sh (installs nodejs npm)"
command -v npm >/dev/null || fail "npm not found; run scripts/install-deps.sh (installs nodejs npm)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] 2>/dev/null || fail "node $(node --version) is too old; examples/node needs node >= 18"
[ -x "$bin/siam-server" ] || fail "$bin/siam-server not built"

# ---- node_modules: npm ci from the lock files, once (the registry is needed only for the library's) ----
npm_ci() { # DIR WHAT
  echo "--- npm ci in ${1#"$root"/} (node_modules missing)"
  if ! (cd "$1" && timeout 300 npm ci --no-audit --no-fund) >"$tmp/npm.log" 2>&1; then
    tail -n 30 "$tmp/npm.log"
    fail "npm ci in $1 failed (see above): $2; run 'npm ci' there by hand once it is"
  fi
  tail -n 3 "$tmp/npm.log"
}
if [ ! -f "$lib/node_modules/@grpc/grpc-js/package.json" ] || [ ! -f "$lib/node_modules/@grpc/proto-loader/package.json" ]; then
  npm_ci "$lib" "the npm registry ($(npm config get registry 2>/dev/null)) must be reachable to install @grpc/grpc-js and @grpc/proto-loader"
fi
# the example's node_modules hold one link, siam-client -> clients/node (an older checkout's hold
# @grpc/grpc-js instead: npm ci replaces them)
[ -f "$example/node_modules/siam-client/package.json" ] || npm_ci "$example" "it links clients/node as siam-client"

run() { # NAME ARGS...: the example, stdout and stderr in $tmp/NAME.out, exit status in rc
  local name=$1; shift
  (cd "$tmp" && timeout 60 node "$example/similarity.js" "$@") >"$tmp/$name.out" 2>&1
  rc=$?
  sed 's/^/  /' "$tmp/$name.out"
}

start_server plain
plain=127.0.0.1:$port plain_pid=$server_pid
printf 'nodeexample-%s\n' "$RANDOM$RANDOM" >"$tmp/token"
chmod 600 "$tmp/token"
start_server token --auth-token-file "$tmp/token"
token=127.0.0.1:$port token_pid=$server_pid

echo "--- similarity.js (demo)"
run demo --server "$plain"
check "demo: exit 0, health SERVING, identical pair at 0 / score 1, 0.5 at margin/2, far pair different (rc $rc)" \
  "[ $rc -eq 0 ] && grep -q '^health: SERVING$' '$tmp/demo.out' &&
   grep -Eq '^siam-server [0-9]+\.[0-9]+\.[0-9]+ at $plain: margin 1, label 1 marks similar pairs' '$tmp/demo.out' &&
   grep -Eq '^  identical +0\.0000 +1\.0000 +yes$' '$tmp/demo.out' &&
   grep -Eq '^  at margin/2 +0\.5000 +0\.5000 +yes$' '$tmp/demo.out' &&
   grep -Eq '^  far +2\.0000 +0\.0588 +no$' '$tmp/demo.out'"
run demo_dim --server "$plain" --dim 128
check "demo --dim 128: exit 0, 4 pairs of 128-d embeddings (rc $rc)" \
  "[ $rc -eq 0 ] && grep -q '^Similarity of 4 pairs of 128-d embeddings (threshold 0.5):$' '$tmp/demo_dim.out'"

echo "--- similarity.js against no server"
run none --server 127.0.0.1:1
check "no server: exit 1, 'cannot reach siam-server at 127.0.0.1:1', UNAVAILABLE (rc $rc)" \
  "[ $rc -eq 1 ] && grep -q '^similarity.js: cannot reach siam-server at 127.0.0.1:1 .*UNAVAILABLE: ' '$tmp/none.out'"

echo "--- similarity.js against a server with a token"
run no_token --server "$token"
check "without the token: exit 1, UNAUTHENTICATED with the server's message (rc $rc)" \
  "[ $rc -eq 1 ] && grep -q '^similarity.js: UNAUTHENTICATED: this server requires a bearer token' '$tmp/no_token.out'"
run with_token --server "$token" --auth-token-file "$tmp/token"
check "with --auth-token-file: exit 0, health SERVING (rc $rc)" \
  "[ $rc -eq 0 ] && grep -q '^health: SERVING$' '$tmp/with_token.out'"

echo "--- few_shot.js"
start_server few --model mlp --seed 3
few=127.0.0.1:$port few_pid=$server_pid
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
(cd "$tmp" && timeout 60 node "$example/few_shot.js" --server "$few" --data "$data") >"$tmp/few.out" 2>&1
rc=$?
sed 's/^/  /' "$tmp/few.out"
check "few_shot.js: exit 0, 5 Bags and 5 Ankle boots added (ids 0..4, 5..9), 10 searches, a count per class (rc $rc)" \
  "[ $rc -eq 0 ] && grep -q '^added 5 images of Bag .* as \"new-Bag\": ids 0..4, gallery of 5 items' '$tmp/few.out' &&
   grep -q '^added 5 images of Ankle boot .* as \"new-Ankle boot\": ids 5..9, gallery of 10 items' '$tmp/few.out' &&
   [ \$(grep -c '^  test image' '$tmp/few.out') -eq 10 ] && grep -Eq '^Bag: [0-5] of 5 predicted \"new-Bag\"' '$tmp/few.out' &&
   grep -Eq '^Ankle boot: [0-5] of 5 predicted \"new-Ankle boot\"' '$tmp/few.out'"
(cd "$tmp" && timeout 60 node "$example/few_shot.js" --server "$plain" --data "$data") >"$tmp/few_nomodel.out" 2>&1
rc=$?
check "few_shot.js against a server without a model: exit 1, FAILED_PRECONDITION with the server's message (rc $rc)" \
  "[ $rc -eq 1 ] && grep -q '^few_shot.js: FAILED_PRECONDITION: the server has no model' '$tmp/few_nomodel.out'"

echo "--- bad usage"
run bad_option --server "$plain" --bogus
check "an unknown option: exit 2 naming it (rc $rc)" "[ $rc -eq 2 ] && grep -q \"Unknown option '--bogus'\" '$tmp/bad_option.out'"
run bad_dim --server "$plain" --dim 0
check "--dim 0: exit 2 (rc $rc)" "[ $rc -eq 2 ] && grep -q -- '--dim 0 is out of range 1..4096' '$tmp/bad_dim.out'"

for name in plain token few; do # SIGTERM: exit 0 (LeakSanitizer checks at exit)
  pidvar=${name}_pid
  kill -TERM "${!pidvar}" 2>/dev/null
  wait "${!pidvar}"
  check "server $name exits 0 on SIGTERM (rc $?)" "[ $? -eq 0 ]"
done
check "no sanitizer report in the servers' logs" "no_sanitizer_reports '$tmp/plain.log' '$tmp/token.log' '$tmp/few.log'"
check "the token is in no server log" "! grep -qF '$(cat "$tmp/token")' '$tmp/plain.log' '$tmp/token.log'"

echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ] || { tail -n 20 "$tmp/plain.log"; exit 1; }
echo "node_test: all passed"
