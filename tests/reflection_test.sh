#!/usr/bin/env bash
# reflection_test: gRPC server reflection (grpc.reflection.v1 and v1alpha) against real siam-server
# processes on 127.0.0.1.
#   reflection_test.sh          Python (Debian's python3-grpcio; tests/reflection_check.py):
#                               every request type, the descriptors against protoc's, NOT_FOUND
#                               for unknown names, one stream with many questions, a malformed
#                               request, Similarity through classes built from reflection; then a
#                               server with --auth-token-file: no token or a wrong one is
#                               UNAUTHENTICATED, the token is answered.
#   reflection_test.sh --node   a third-party reflection client (npm's grpc-js-reflection-client on
#                               @grpc/grpc-js, tests/reflection/reflection_client.js): discovers
#                               siam.v1 with no .proto and calls Status, Similarity and the health
#                               check through stubs built from the reflected descriptors, with and
#                               without a token. Installs tests/reflection/node_modules with `npm
#                               ci` from the committed lock file when missing; exits 77 (skipped,
#                               saying why) when node or npm is missing or npm ci cannot install.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
node_mode=0
[ "${1:-}" = --node ] && node_mode=1
project=$root/tests/reflection
skip() { echo "SKIP reflection_test --node: $*"; exit 77; }

if [ $node_mode -eq 1 ]; then
  command -v node >/dev/null || skip "node not found (scripts/install-deps.sh installs nodejs npm)"
  command -v npm >/dev/null || skip "npm not found (scripts/install-deps.sh installs nodejs npm)"
  [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ] 2>/dev/null ||
    skip "node $(node --version) is too old: @grpc/grpc-js needs node >= 18"
  if [ ! -f "$project/node_modules/grpc-js-reflection-client/package.json" ] ||
    [ ! -f "$project/node_modules/@grpc/grpc-js/package.json" ]; then
    echo "-- npm ci in tests/reflection (node_modules missing)"
    if ! (cd "$project" && timeout 300 npm ci --no-audit --no-fund) >"$tmp/npm.log" 2>&1; then
      tail -n 20 "$tmp/npm.log"
      skip "npm ci in $project failed (above): the npm registry ($(npm config get registry 2>/dev/null)) must be reachable once to install grpc-js-reflection-client and @grpc/grpc-js"
    fi
  fi
else
  python_stubs "$tmp/stubs"
  (cd "$root" && protoc -I proto --python_out="$tmp/stubs" proto/grpc/reflection/v1/reflection.proto) ||
    { echo "FAIL protoc --python_out of reflection.proto failed"; exit 1; }
fi

# run NAME ARGS...: the Python or Node client against the server on $port, its lines shown
run() {
  local name=$1 t0 rc; shift
  t0=$(date +%s.%N)
  if [ $node_mode -eq 1 ]; then
    timeout 120 node "$project/reflection_client.js" --server "127.0.0.1:$port" "$@" >"$tmp/$name.out" 2>&1
  else
    timeout 120 "$py" "$root/tests/reflection_check.py" --server "127.0.0.1:$port" --stubs "$tmp/stubs" "$@" >"$tmp/$name.out" 2>&1
  fi
  rc=$?
  sed 's/^/  /' "$tmp/$name.out"
  check "$name: every check passed (exit $rc, $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s)" \
    "[ $rc -eq 0 ] && grep -q ' 0 failed$' '$tmp/$name.out'"
}

echo "-- a server without a token"
start_server plain
plain_pid=$server_pid
run plain
echo "-- a server with --auth-token-file"
printf 'refl-%s-token\n' "$RANDOM$RANDOM" >"$tmp/token"
chmod 600 "$tmp/token"
start_server token --auth-token-file "$tmp/token"
if [ $node_mode -eq 1 ]; then
  run token --token-file "$tmp/token"
else
  run token --token-file "$tmp/token" --expect-token
  run token_all --token-file "$tmp/token"
fi
# SIGTERM: both stop cleanly (in the sanitizer build LeakSanitizer checks them at exit)
for name_pid in "plain:$plain_pid" "token:$server_pid"; do
  kill -TERM "${name_pid#*:}" 2>/dev/null
  wait "${name_pid#*:}"
  check "server ${name_pid%%:*} exits 0 on SIGTERM (rc $?)" "[ $? -eq 0 ]"
done
check "no sanitizer report in the servers' logs" "no_sanitizer_reports '$tmp/plain.log' '$tmp/token.log'"
check "the token is in no server log" "! grep -qF '$(cat "$tmp/token")' '$tmp/plain.log' '$tmp/token.log'"
check "no server log line at ERROR" "! grep -q ' ERROR ' '$tmp/plain.log' '$tmp/token.log'"

echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ] || { tail -n 20 "$tmp/token.log"; exit 1; }
