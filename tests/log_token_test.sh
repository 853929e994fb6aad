#!/usr/bin/env bash
# log_token_test: no bearer token ever reaches a log, with gRPC logging all it can. siam-server with
# a token file, in plaintext and with TLS (certificates made here with openssl), runs under
# GRPC_VERBOSITY=DEBUG and GRPC_TRACE=all at --log-level debug (gRPC 1.51's http, tcp and call
# tracers print every header, as text and as byte dumps); siam-client (same settings) trains with
# the right token and is refused with wrong ones (an unrelated token, the right one cut short by a
# character, none); Python (Debian's grpcio) calls with the right token and a wrong one. Every
# token's text must be absent from every program's stderr and stdout. So that the check cannot pass
# for want of material, the logs must hold gRPC's lines about the authorization header, scrubbed.
# Python runs without GRPC_TRACE: its grpcio's own log is not siam's to scrub.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
command -v openssl >/dev/null || { echo "FAIL openssl not found; run scripts/install-deps.sh"; exit 1; }

# ---- certificates and tokens ---------------------------------------------------------------------
pki=$tmp/pki
mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/ca.key" \
  -out "$pki/ca.pem" -days 30 -subj "/CN=siam log test CA" 2>/dev/null &&
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/server.key" \
  -out "$pki/server.csr" -subj "/CN=localhost" 2>/dev/null &&
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$pki/server.ext" &&
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
  -out "$pki/server.pem" -days 30 -extfile "$pki/server.ext" 2>/dev/null ||
  { echo "FAIL cannot make the test certificates with openssl"; exit 1; }
chmod 600 "$pki"/*.key

rand() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
token="siamLogTest$(rand)"
wrong="otherDeployment$(rand)"
short=${token%?} # the right token cut short: a near miss that holds almost all of it
printf '%s\n' "$token" >"$tmp/token"
printf '%s\n' "$wrong" >"$tmp/wrong"
printf '%s\n' "$short" >"$tmp/short"
chmod 600 "$tmp/token" "$tmp/wrong" "$tmp/short"

common=(--epochs 1 --batch-size 128 --train-limit 300 --test-limit 100 --data "$data" --threads 1
        --timeout 20 --log-level debug)
export GRPC_VERBOSITY=DEBUG GRPC_TRACE=all
# client NAME ARGS...: siam-client under the broadest tracing; sets rc
client() {
  local name=$1; shift
  timeout 300 "$bin/siam-client" "$@" "${common[@]}" >"$tmp/$name.out" 2>"$tmp/$name.log"
  rc=$?
}

have_py=0
if "$py" -c 'import grpc, google.protobuf' 2>/dev/null && command -v protoc >/dev/null; then
  mkdir -p "$tmp/py"
  (cd "$root" && protoc -I proto --python_out="$tmp/py" proto/siam/v1/siam.proto \
    proto/grpc/health/v1/health.proto) && have_py=1
fi
check "$py can import grpc and protoc made the stubs (scripts/install-deps.sh)" "[ $have_py -eq 1 ]"

# round NAME SERVER_ARGS -- CLIENT_ARGS: one server and every caller against it
round() {
  local name=$1 sargs=() cargs=(); shift
  while [ "$1" != -- ]; do sargs+=("$1"); shift; done
  shift
  cargs=("$@")
  echo "-- $name"
  start_server "$name" --auth-token-file "$tmp/token" --log-level debug "${sargs[@]}"
  client "$name-right" --server "127.0.0.1:$port" --auth-token-file "$tmp/token" "${cargs[@]}"
  check "$name: the right token trains (rc $rc)" "[ $rc -eq 0 ]"
  for w in wrong short; do
    client "$name-$w" --server "127.0.0.1:$port" --auth-token-file "$tmp/$w" "${cargs[@]}"
    check "$name: token '$w' is refused, UNAUTHENTICATED (rc $rc)" \
      "[ $rc -eq 1 ] && grep -q 'UNAUTHENTICATED' '$tmp/$name-$w.log'"
  done
  client "$name-none" --server "127.0.0.1:$port" "${cargs[@]}"
  check "$name: no token is refused (rc $rc)" "[ $rc -eq 1 ]"
  if [ $have_py -eq 1 ]; then
    local pyargs=(--server "localhost:$port" --stubs "$tmp/py")
    [ "$name" = tls ] && pyargs+=(--tls-ca "$pki/ca.pem")
    env -u GRPC_TRACE -u GRPC_VERBOSITY timeout 60 "$py" "$root/tests/raw_client.py" \
      "${pyargs[@]}" --auth-token-file "$tmp/token" >"$tmp/$name-py-right.out" 2>&1
    local prc=$?
    check "$name: Python with the right token exits 0 (rc $prc)" "[ $prc -eq 0 ]"
    env -u GRPC_TRACE -u GRPC_VERBOSITY timeout 60 "$py" "$root/tests/raw_client.py" \
      "${pyargs[@]}" --auth-token-file "$tmp/wrong" >"$tmp/$name-py-wrong.out" 2>&1
    check "$name: Python with a wrong token is UNAUTHENTICATED" \
      "grep -q 'UNAUTHENTICATED' '$tmp/$name-py-wrong.out'"
  fi
  kill -TERM "$server_pid" 2>/dev/null
  wait "$server_pid"
  check "$name: server exits 0 on SIGTERM" "[ $? -eq 0 ]"
  # the checks below must have seen the headers: gRPC's traces of them reached the logs, scrubbed
  check "$name: the server's log holds gRPC's trace of the authorization header, scrubbed" \
    "grep -q 'DEBUG grpc: .*authorization: Bearer \[token\]' '$tmp/$name.log'"
  check "$name: ... and its byte dumps (text and hex), scrubbed" \
    "grep -q 'authorization.Bearer \[token\]' '$tmp/$name.log' &&
     grep -q '61 75 74 68 6f 72 69 7a 61 74 69 6f 6e \[token\]' '$tmp/$name.log'"
  check "$name: the client's log holds gRPC's trace of the header it sent, scrubbed" \
    "grep -q 'DEBUG grpc: .*authorization.*Bearer \[token\]' '$tmp/$name-right.log' &&
     grep -q 'DEBUG grpc: .*authorization.*Bearer \[token\]' '$tmp/$name-wrong.log'"
}

round plain --
round tls --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" -- --tls-ca "$pki/ca.pem"

logs=("$tmp"/*.log "$tmp"/*.out)
for t in token wrong short; do
  check "the $t token's text is in no log or output (${#logs[@]} files)" \
    "! grep -lF -- \"\$$t\" ${logs[*]}"
done
if [ $fails -ne 0 ]; then
  for t in "$token" "$wrong" "$short"; do
    grep -nF -- "$t" "${logs[@]}" | cut -c1-240 | head -5
  done
fi
check "no sanitizer reports in any log" "no_sanitizer_reports ${logs[*]}"
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
