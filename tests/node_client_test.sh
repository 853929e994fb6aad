#!/usr/bin/env bash
# node_client_test: the Node client library (clients/node, require('siam-client')) against real
# siam-server processes on 127.0.0.1:
#   1. clients/node/node_modules from the committed package-lock.json (`npm ci`, once: the npm
#      registry is needed only then);
#   2. `npm pack` of a copy laid out like a clean clone (its prepack copies the .proto files into
#      the package, its postpack removes them): the tarball holds index.js, package.json, README.md
#      and the two .proto files, nothing else; it installs into a scratch project;
#   3. clients/node/test/*.test.js (node --test) against six servers: plain (--max-message-mb 1),
#      with a model (image Similarity), with a model and an empty gallery (search, addToGallery;
#      a fresh one for each of the two runs), with a bearer token, with TLS and the token, with
#      mutual TLS (certificates made with openssl here): distances against JavaScript's, every
#      error class the servers send, the servers' messages, a raw Train stream against the
#      contrastive loss; once in place and once against the package installed from the tarball.
# Exits 77 (skipped, saying why) when node >= 18 or npm is missing, or when npm cannot fetch the
# packages (no registry and nothing in npm's cache).
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
root=$(cd "$(dirname "$0")/.." && pwd)
lib=$root/clients/node
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
t_start=$(date +%s.%N)
skip() { echo "SKIP node_client_test: $*"; exit 77; }
secs() { awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $1}"; }
# npm's log names a network failure (no registry, nothing cached): skip rather than fail
network_failure() { grep -Eq 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|ENOTCACHED|network' "$1"; }

# ---- prerequisites ----
command -v node >/dev/null || skip "node not found (scripts/install-deps.sh installs nodejs npm)"
command -v npm >/dev/null || skip "npm not found (scripts/install-deps.sh installs nodejs npm)"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ] 2>/dev/null ||
  skip "node $(node --version) is too old: clients/node needs node >= 18"
command -v openssl >/dev/null || { echo "FAIL openssl not found; run scripts/install-deps.sh"; exit 1; }
echo "node $(node --version), npm $(npm --version)"

# ---- 1. the library's node_modules, from the lock file ----
if [ ! -f "$lib/node_modules/@grpc/grpc-js/package.json" ] || [ ! -f "$lib/node_modules/@grpc/proto-loader/package.json" ]; then
  echo "-- npm ci in clients/node (node_modules missing)"
  if ! (cd "$lib" && timeout 300 npm ci --no-audit --no-fund) >"$tmp/npm.log" 2>&1; then
    tail -n 20 "$tmp/npm.log"
    network_failure "$tmp/npm.log" &&
      skip "npm ci in $lib could not fetch @grpc/grpc-js and @grpc/proto-loader: the npm registry ($(npm config get registry 2>/dev/null)) must be reachable once"
    echo "FAIL npm ci in $lib (above)"; exit 1
  fi
fi

# ---- 2. npm pack of a copy laid out like a clean clone; the tarball installed elsewhere ----
t0=$(date +%s.%N)
mkdir -p "$tmp/repo/clients/node" "$tmp/dist" "$tmp/app"
cp -r "$root/proto" "$tmp/repo/proto"
(cd "$lib" && tar --exclude=node_modules --exclude=proto --exclude='*.tgz' -cf - .) | (cd "$tmp/repo/clients/node" && tar -xf -)
check "npm pack (prepack copies the .proto files in)" \
  "cd '$tmp/repo/clients/node' && npm pack --pack-destination '$tmp/dist' >'$tmp/pack.log' 2>&1"
tgz=$tmp/dist/siam-client-$(node -p "require('$lib/package.json').version").tgz
tar -tzf "$tgz" 2>/dev/null | sort >"$tmp/pack.list"
printf '%s\n' package/README.md package/index.js package/package.json package/proto/grpc/health/v1/health.proto \
  package/proto/siam/v1/siam.proto >"$tmp/pack.want"
check "the tarball holds index.js, package.json, README.md and the two .proto files, nothing else ($(tr '\n' ' ' <"$tmp/pack.list"))" \
  "cmp -s '$tmp/pack.list' '$tmp/pack.want'"
check "the tarball's .proto files are the repository's" \
  "mkdir '$tmp/unpacked' && tar -xzf '$tgz' -C '$tmp/unpacked' &&
   cmp '$tmp/unpacked/package/proto/siam/v1/siam.proto' '$root/proto/siam/v1/siam.proto' &&
   cmp '$tmp/unpacked/package/proto/grpc/health/v1/health.proto' '$root/proto/grpc/health/v1/health.proto'"
check "postpack removed the copies from the packed directory" "[ ! -e '$tmp/repo/clients/node/proto' ]"
check "nothing packed or copied in the repository's clients/node" \
  "[ ! -e '$lib/proto' ] && [ -z \"\$(find '$lib' -maxdepth 1 -name '*.tgz')\" ]"
printf '{ "name": "siam-client-user", "version": "1.0.0", "private": true }\n' >"$tmp/app/package.json"
# npm's cache holds the dependencies since step 1 (or an earlier npm ci): offline first
if ! (cd "$tmp/app" && timeout 300 npm install --offline --no-audit --no-fund "$tgz") >"$tmp/install.log" 2>&1 &&
  ! (cd "$tmp/app" && timeout 300 npm install --no-audit --no-fund "$tgz") >>"$tmp/install.log" 2>&1; then
  tail -n 20 "$tmp/install.log"
  network_failure "$tmp/install.log" &&
    skip "npm install of the tarball could not fetch its dependencies (no registry, not in npm's cache)"
  echo "FAIL npm install of the tarball (above)"; exit 1
fi
installed=$tmp/app/node_modules/siam-client
check "the tarball installs into a scratch project and loads there, reading its own .proto copies" \
  "cd '$tmp/app' && [ ! -L '$installed' ] &&
   [ \"\$(node -p \"require('siam-client').protoDir()\")\" = '$installed/proto' ]"
echo "   (pack and install: $(secs "$t0") s)"

# ---- certificates, a token and five servers ----
pki=$tmp/pki
mkdir -p "$pki"
ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$1.key" \
    -out "$pki/$1.pem" -days 30 -subj "/CN=$2" 2>/dev/null
}
leaf() { # NAME CA CN EXTENSIONS
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$1.key" \
    -out "$pki/$1.csr" -subj "/CN=$3" 2>/dev/null &&
    printf '%s\n' "$4" >"$pki/$1.ext" &&
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$2.pem" -CAkey "$pki/$2.key" -CAcreateserial \
      -out "$pki/$1.pem" -days 30 -extfile "$pki/$1.ext" 2>/dev/null
}
ca ca "siam test CA" && ca other "unrelated CA" &&
  leaf server ca localhost 'subjectAltName=DNS:localhost,IP:127.0.0.1' &&
  leaf client ca node-client 'extendedKeyUsage=clientAuth' ||
  { echo "FAIL cannot make the test certificates with openssl"; exit 1; }
chmod 600 "$pki"/*.key
printf 'nodeclient-%s\n' "$RANDOM$RANDOM" >"$tmp/token"
chmod 600 "$tmp/token"

start_server plain --max-message-mb 1
plain=127.0.0.1:$port plain_pid=$server_pid
start_server model --model mlp --seed 3
model=127.0.0.1:$port model_pid=$server_pid
start_server token --auth-token-file "$tmp/token"
token=127.0.0.1:$port token_pid=$server_pid
start_server tls --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" --auth-token-file "$tmp/token"
tls=127.0.0.1:$port tls_pid=$server_pid
start_server mtls --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" --tls-client-ca "$pki/ca.pem"
mtls=127.0.0.1:$port mtls_pid=$server_pid

# ---- 3. the tests, in place and against the installed tarball ----
export SIAM_TEST_SERVER=$plain SIAM_TEST_MODEL_SERVER=$model SIAM_TEST_TOKEN_SERVER=$token \
  SIAM_TEST_TOKEN=$(cat "$tmp/token") SIAM_TEST_TLS_SERVER=$tls SIAM_TEST_TLS_CA=$pki/ca.pem \
  SIAM_TEST_MTLS_SERVER=$mtls SIAM_TEST_TLS_CLIENT_CERT=$pki/client.pem \
  SIAM_TEST_TLS_CLIENT_KEY=$pki/client.key SIAM_TEST_OTHER_CA=$pki/other.pem
gallery_pids=()
for where in "in place" "installed from the tarball"; do
  name=${where// /_}
  start_server "gallery_$name" --model mlp --seed 3 --gallery-max 40 # each run fills its own
  export SIAM_TEST_GALLERY_SERVER=127.0.0.1:$port
  gallery_pids+=("$server_pid")
  module=""
  [ "$where" = "in place" ] || module=$installed
  echo "-- clients/node/test, the package $where"
  t0=$(date +%s.%N)
  (cd "$tmp" && SIAM_CLIENT_MODULE=$module timeout 300 node --test --test-reporter=spec "$lib"/test/*.test.js) \
    >"$tmp/$name.out" 2>&1
  rc=$?
  sed 's/^/  /' "$tmp/$name.out"
  check "clients/node/test ($where): all pass, none skipped (exit $rc, $(secs "$t0") s)" \
    "[ $rc -eq 0 ] && grep -q '^ℹ fail 0$' '$tmp/$name.out' && grep -q '^ℹ skipped 0$' '$tmp/$name.out' &&
     grep -Eq '^ℹ pass [1-9][0-9]+$' '$tmp/$name.out'"
done

for name in plain model token tls mtls; do # SIGTERM: exit 0 (LeakSanitizer checks at exit)
  pidvar=${name}_pid
  kill -TERM "${!pidvar}" 2>/dev/null
  wait "${!pidvar}"
  check "server $name exits 0 on SIGTERM (rc $?)" "[ $? -eq 0 ]"
done
for pid in "${gallery_pids[@]}"; do
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  check "gallery server $pid exits 0 on SIGTERM (rc $?)" "[ $? -eq 0 ]"
done
check "no sanitizer report in the servers' logs" "no_sanitizer_reports '$tmp'/*.log"
check "the token is in no server log" "! grep -qF '$(cat "$tmp/token")' '$tmp'/*.log"

echo "node_client_test: $(secs "$t_start") s"
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ] || exit 1
