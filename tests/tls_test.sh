#!/usr/bin/env bash
# tls_test: TLS and bearer tokens with real processes on 127.0.0.1 and the real Fashion-MNIST (a
# prefix of it, so every training run takes seconds). Every certificate is made here with
# openssl: a CA, a server certificate for localhost/127.0.0.1, a client certificate, a second
# unrelated CA with a server and a client certificate of its own, expired server and client
# certificates, a certificate for another name.
#   1. TLS: a worker trains by IP and by name; Python (grpcio) calls over TLS;
#   2. each way TLS can fail gives its own message, naming the side that refused and why, and
#      exit 1 within 5 s (no retry): unknown CA, name mismatch (certificate for another name,
#      and --tls-server-name), expired server certificate, TLS on one side only;
#   3. mutual TLS: a worker with its certificate trains; without one, with one from another CA,
#      with an expired one, it is refused, and the server logs what it refused;
#   4. unusable files: missing, empty, not PEM, a CSR, swapped, a key that does not match the
#      certificate: exit 2 naming the file, for siam-server and siam-client;
#   5. bearer token (with TLS, server and workers at --log-level debug, gRPC's http trace on): the
#      right token trains, none or a wrong one is UNAUTHENTICATED at once, the health check
#      included; Python with and without it; token files that are empty, missing, have a control
#      character, or are open to others; the token appears in no log of any program.
# In the sanitizer build every process runs under ASan/UBSan, so leaks or errors fail it.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
command -v openssl >/dev/null || { echo "FAIL openssl not found; run scripts/install-deps.sh"; exit 1; }

# ---- certificates ------------------------------------------------------------------------------
pki=$tmp/pki
mkdir -p "$pki"
# ca NAME CN: a self-signed CA certificate (EC P-256: quick to make)
ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$1.key" \
    -out "$pki/$1.pem" -days 30 -subj "/CN=$2" 2>/dev/null
}
# leaf NAME CA CN DAYS EXT: a certificate signed by CA (DAYS -1: expired yesterday)
leaf() {
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$1.key" \
    -out "$pki/$1.csr" -subj "/CN=$3" 2>/dev/null &&
  printf '%s\n' "$5" >"$pki/$1.ext" &&
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$2.pem" -CAkey "$pki/$2.key" -CAcreateserial \
    -out "$pki/$1.pem" -days "$4" -extfile "$pki/$1.ext" 2>/dev/null
}
server_ext='subjectAltName=DNS:localhost,IP:127.0.0.1'
client_ext='extendedKeyUsage=clientAuth'
ca ca "siam test CA" && ca ca2 "unrelated CA" &&
leaf server ca localhost 30 "$server_ext" &&
leaf expired ca localhost -1 "$server_ext" &&
leaf wrongname ca foo.example 30 'subjectAltName=DNS:foo.example' &&
leaf server2 ca2 localhost 30 "$server_ext" &&
leaf client ca siam-worker 30 "$client_ext" &&
leaf client2 ca2 siam-worker 30 "$client_ext" &&
leaf client_expired ca siam-worker -1 "$client_ext" ||
  { echo "FAIL cannot make the test certificates with openssl"; exit 1; }
chmod 600 "$pki"/*.key
check "openssl made an expired certificate" "! openssl x509 -in '$pki/expired.pem' -noout -checkend 0"

common=(--epochs 1 --batch-size 128 --train-limit 2000 --test-limit 500 --data "$data" --threads 1
        --json --timeout 20)
# run_client NAME ARGS...: siam-client, stdout/stderr in $tmp/NAME.out/.log; sets rc and secs
run_client() {
  local name=$1 t0; shift
  t0=$(date +%s.%N)
  timeout 300 "$bin/siam-client" "$@" >"$tmp/$name.out" 2>"$tmp/$name.log"
  rc=$?
  secs=$(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $t0}")
}
# trains NAME ARGS...: a worker that must train to the end
trains() {
  local name=$1; shift
  run_client "$name" "$@" "${common[@]}"
  check "$name: trains and exits 0 (rc $rc, $secs s)" "[ $rc -eq 0 ]"
  check "$name: final report and summary line" \
    "grep -q '\"accuracy\": 0\.' '$tmp/$name.out' && grep -q 'done: [0-9]* batches' '$tmp/$name.log'"
}
# refused NAME RC TEXT... -- ARGS...: a program run that must fail at once with exit RC and
# every TEXT in its stderr (siam-client unless ARGS start with a program path)
refused() {
  local name=$1 want=$2 t; shift 2
  local texts=()
  while [ "$1" != -- ]; do texts+=("$1"); shift; done
  shift
  if [ -x "${1:-}" ]; then
    local prog=$1 t0; shift
    t0=$(date +%s.%N)
    timeout 60 "$prog" "$@" >"$tmp/$name.out" 2>"$tmp/$name.log"
    rc=$?
    secs=$(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $t0}")
  else
    run_client "$name" "$@" "${common[@]}"
  fi
  check "$name: exit $want (rc $rc) within 5 s ($secs s)" \
    "[ $rc -eq $want ] && awk 'BEGIN{exit !($secs < 5)}'"
  for t in "${texts[@]}"; do
    check "$name: says '$t'" 'grep -qF -- "$t" "$tmp/$name.log"'
  done
  sed -n 's/^/     /p' "$tmp/$name.log" | grep -v ' INFO \| DEBUG ' | head -3
}
stop_server() {
  kill -TERM "$server_pid" 2>/dev/null
  wait "$server_pid"
  local src=$?
  check "server $1 exits 0 on SIGTERM (rc $src)" "[ $src -eq 0 ]"
}

# ---- 1. TLS ------------------------------------------------------------------------------------
echo "-- TLS"
start_server tls --tls-cert "$pki/server.pem" --tls-key "$pki/server.key"
tls_port=$port
check "server logs its certificate" \
  "grep -q \"TLS: certificate 'CN=localhost' (DNS:localhost, IP:127.0.0.1) issued by 'CN=siam test CA'\" '$tmp/tls.log'"
trains tls_ip --server "127.0.0.1:$port" --tls-ca "$pki/ca.pem"
trains tls_name --server "localhost:$port" --tls-ca "$pki/ca.pem" --worker-id by-name
check "server summarised both TLS streams" "[ \$(grep -c 'ended OK' '$tmp/tls.log') -eq 2 ]"

# ---- 2. TLS failures, each with its own message --------------------------------------------------
echo "-- TLS failures"
refused unknown_ca 1 "UNAUTHENTICATED: TLS: the client rejected the server's certificate: unknown CA" \
  "'CN=localhost' is issued by 'CN=siam test CA', not by --tls-ca $pki/ca2.pem ('CN=unrelated CA')" -- \
  --server "127.0.0.1:$port" --tls-ca "$pki/ca2.pem"
refused plaintext_client 1 "TLS: the server at 127.0.0.1:$port requires TLS" "give --tls-ca" -- \
  --server "127.0.0.1:$port"
refused override_name 1 "the client rejected the server's certificate: name mismatch" \
  "the certificate is for 'DNS:localhost, IP:127.0.0.1', connected to 'foo.example'" -- \
  --server "127.0.0.1:$port" --tls-ca "$pki/ca.pem" --tls-server-name foo.example
check "server: a client asked for a name its certificate lacks" \
  "grep -q \"TLS: a client asked for the server name 'foo.example'\" '$tmp/tls.log'"
check "server: a client hung up during the handshake, named" \
  "grep -q 'TLS: ipv4:127.0.0.1:[0-9]* closed the connection during the handshake' '$tmp/tls.log'"
stop_server tls

start_server wrongname --tls-cert "$pki/wrongname.pem" --tls-key "$pki/wrongname.key"
refused wrong_name 1 "name mismatch: the certificate is for 'DNS:foo.example', connected to 'localhost'" -- \
  --server "localhost:$port" --tls-ca "$pki/ca.pem"
stop_server wrongname

start_server expired --tls-cert "$pki/expired.pem" --tls-key "$pki/expired.key"
check "server warns that its certificate expired" \
  "grep -q 'WARN .*--tls-cert $pki/expired.pem expired on' '$tmp/expired.log'"
refused expired_server 1 "the client rejected the server's certificate: expired: 'CN=localhost' expired on" -- \
  --server "127.0.0.1:$port" --tls-ca "$pki/ca.pem"
stop_server expired

start_server plain
refused tls_to_plaintext 1 "TLS: the server at 127.0.0.1:$port does not speak TLS" -- \
  --server "127.0.0.1:$port" --tls-ca "$pki/ca.pem"
stop_server plain

# ---- 3. mutual TLS ------------------------------------------------------------------------------
echo "-- mutual TLS"
start_server mtls --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" --tls-client-ca "$pki/ca.pem"
check "server logs that it requires client certificates" \
  "grep -q \"mutual TLS: every client must present a certificate signed by 'CN=siam test CA'\" '$tmp/mtls.log'"
trains mtls_ok --server "127.0.0.1:$port" --tls-ca "$pki/ca.pem" --tls-cert "$pki/client.pem" \
  --tls-key "$pki/client.key"
refused mtls_no_cert 1 "TLS: the server requires a client certificate (mutual TLS): give --tls-cert and --tls-key" -- \
  --server "127.0.0.1:$port" --tls-ca "$pki/ca.pem"
check "server: refused a client without a certificate" \
  "grep -q 'WARN  rpc: TLS: refused a client without a certificate' '$tmp/mtls.log'"
refused mtls_other_ca 1 "TLS: the server rejected this client's certificate (mutual TLS: --tls-cert $pki/client2.pem, 'CN=siam-worker' issued by 'CN=unrelated CA', is not signed by the server's --tls-client-ca)" -- \
  --server "127.0.0.1:$port" --tls-ca "$pki/ca.pem" --tls-cert "$pki/client2.pem" --tls-key "$pki/client2.key"
check "server: refused a client's certificate, naming its --tls-client-ca" \
  "grep -q \"WARN  rpc: TLS: refused a client's certificate: it does not verify against --tls-client-ca $pki/ca.pem\" '$tmp/mtls.log'"
refused mtls_expired 1 "TLS: the server rejected this client's certificate (mutual TLS): --tls-cert $pki/client_expired.pem expired on" -- \
  --server "127.0.0.1:$port" --tls-ca "$pki/ca.pem" --tls-cert "$pki/client_expired.pem" \
  --tls-key "$pki/client_expired.key"
stop_server mtls

# ---- 4. unusable files: exit 2 naming the file ---------------------------------------------------
echo "-- files"
: >"$tmp/empty.pem"
echo "not a certificate" >"$tmp/text.pem"
srv=$bin/siam-server
refused srv_missing 2 "--tls-cert $tmp/none.pem: no such file" -- \
  "$srv" --listen 127.0.0.1:0 --tls-cert "$tmp/none.pem" --tls-key "$pki/server.key"
refused srv_empty 2 "--tls-cert $tmp/empty.pem is empty" -- \
  "$srv" --listen 127.0.0.1:0 --tls-cert "$tmp/empty.pem" --tls-key "$pki/server.key"
refused srv_not_pem 2 "--tls-cert $tmp/text.pem is not a PEM file" -- \
  "$srv" --listen 127.0.0.1:0 --tls-cert "$tmp/text.pem" --tls-key "$pki/server.key"
refused srv_mismatch 2 "--tls-key $pki/client.key does not match the certificate in --tls-cert $pki/server.pem" -- \
  "$srv" --listen 127.0.0.1:0 --tls-cert "$pki/server.pem" --tls-key "$pki/client.key"
refused srv_swapped 2 "--tls-cert $pki/server.key holds a PRIVATE KEY (are --tls-cert and --tls-key swapped?)" -- \
  "$srv" --listen 127.0.0.1:0 --tls-cert "$pki/server.key" --tls-key "$pki/server.pem"
refused srv_csr_as_ca 2 "--tls-client-ca $pki/client.csr is a certificate signing request" -- \
  "$srv" --listen 127.0.0.1:0 --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" \
  --tls-client-ca "$pki/client.csr"
refused srv_no_key 2 "--tls-cert needs --tls-key" -- "$srv" --tls-cert "$pki/server.pem"
refused cli_missing_ca 2 "--tls-ca $tmp/none.pem: no such file" -- \
  --server "127.0.0.1:$port" --tls-ca "$tmp/none.pem"
refused cli_mismatch 2 "--tls-key $pki/server.key does not match the certificate in --tls-cert $pki/client.pem" -- \
  --server "127.0.0.1:$port" --tls-ca "$pki/ca.pem" --tls-cert "$pki/client.pem" --tls-key "$pki/server.key"
refused cli_cert_without_ca 2 "--tls-cert, --tls-key and --tls-server-name need --tls-ca" -- \
  --server "127.0.0.1:$port" --tls-cert "$pki/client.pem" --tls-key "$pki/client.key"

# ---- 5. bearer token ----------------------------------------------------------------------------
echo "-- bearer token"
token="siam-tls-test-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
printf '  %s  \n' "$token" >"$tmp/token"
chmod 600 "$tmp/token"
echo "wrong-$token" >"$tmp/wrong-token"
chmod 600 "$tmp/wrong-token"
# gRPC's own http trace dumps every header (as text and hex): the token must not show there either
export GRPC_TRACE=http
start_server token --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" \
  --auth-token-file "$tmp/token" --log-level debug
check "server says every call needs the token" \
  "grep -q 'every call needs the bearer token (the health check too)' '$tmp/token.log'"
trains token_ok --server "127.0.0.1:$port" --tls-ca "$pki/ca.pem" --auth-token-file "$tmp/token" \
  --log-level debug
unset GRPC_TRACE
check "gRPC's trace showed the authorization header, with the token scrubbed" \
  "grep -q 'authorization.*Bearer \[token\]' '$tmp/token_ok.log'"
refused token_missing 1 "UNAUTHENTICATED: this server requires a bearer token" -- \
  --server "127.0.0.1:$port" --tls-ca "$pki/ca.pem" --log-level debug
refused token_wrong 1 "UNAUTHENTICATED: the bearer token sent is not this server's" -- \
  --server "127.0.0.1:$port" --tls-ca "$pki/ca.pem" --auth-token-file "$tmp/wrong-token" \
  --log-level debug
check "server logged the refused calls without the token" \
  "grep -q 'WARN  rpc: UNAUTHENTICATED /siam.v1.Siamese/Status from ipv4:127.0.0.1:[0-9]*: no token' '$tmp/token.log' &&
   grep -q 'WARN  rpc: UNAUTHENTICATED /siam.v1.Siamese/Status from ipv4:127.0.0.1:[0-9]*: wrong token' '$tmp/token.log'"

# Python (Debian's grpcio): TLS + token, without the token, and the health check without it
if "$py" -c 'import grpc, google.protobuf' 2>/dev/null && command -v protoc >/dev/null; then
  mkdir -p "$tmp/py"
  (cd "$root" && protoc -I proto --python_out="$tmp/py" proto/siam/v1/siam.proto \
    proto/grpc/health/v1/health.proto)
  script=$root/tests/raw_client.py
  pyargs=(--server "localhost:$port" --stubs "$tmp/py" --tls-ca "$pki/ca.pem")
  timeout 60 "$py" "$script" "${pyargs[@]}" --auth-token-file "$tmp/token" >"$tmp/py_token.out" 2>&1
  prc=$?
  check "Python with TLS and the token: demo exits 0 (rc $prc), health SERVING" \
    "[ $prc -eq 0 ] && grep -q '^health: SERVING$' '$tmp/py_token.out'"
  timeout 60 "$py" "$script" "${pyargs[@]}" >"$tmp/py_no_token.out" 2>&1
  prc=$?
  check "Python without the token: exit 1 (rc $prc), UNAUTHENTICATED" \
    "[ $prc -eq 1 ] && grep -q 'UNAUTHENTICATED: this server requires a bearer token' '$tmp/py_no_token.out'"
  timeout 60 "$py" - "$tmp/py" "$pki/ca.pem" "$port" >"$tmp/py_health.out" 2>&1 <<'PYEOF'
import importlib.util, sys
import grpc
stubs, ca, port = sys.argv[1:]
spec = importlib.util.spec_from_file_location("h", f"{stubs}/grpc/health/v1/health_pb2.py")
h = importlib.util.module_from_spec(spec)
spec.loader.exec_module(h)
creds = grpc.ssl_channel_credentials(root_certificates=open(ca, "rb").read())
ch = grpc.secure_channel(f"localhost:{port}", creds)
check = ch.unary_unary("/grpc.health.v1.Health/Check",
                       request_serializer=h.HealthCheckRequest.SerializeToString,
                       response_deserializer=h.HealthCheckResponse.FromString)
try:
    check(h.HealthCheckRequest(service=""), timeout=5)
    print("health answered without a token")
except grpc.RpcError as e:
    print(e.code().name, e.details())
PYEOF
  check "the health check needs the token too" "grep -q '^UNAUTHENTICATED ' '$tmp/py_health.out'"
else
  check "$py can import grpc and protoc exists (scripts/install-deps.sh)" false
fi

# token files
printf '' >"$tmp/tok_empty"
printf 'abc\001def\n' >"$tmp/tok_ctrl"
chmod 600 "$tmp/tok_empty" "$tmp/tok_ctrl"
refused token_empty 2 "--auth-token-file $tmp/tok_empty: the file is empty" -- \
  --server "127.0.0.1:$port" --auth-token-file "$tmp/tok_empty"
refused token_absent 2 "--auth-token-file $tmp/tok_none: no such file" -- \
  "$srv" --listen 127.0.0.1:0 --auth-token-file "$tmp/tok_none"
refused token_control 2 "--auth-token-file $tmp/tok_ctrl: the token has a control character at position 4" -- \
  "$srv" --listen 127.0.0.1:0 --auth-token-file "$tmp/tok_ctrl"
stop_server token
cp "$tmp/token" "$tmp/token-0644"
chmod 644 "$tmp/token-0644"
start_server token_open --auth-token-file "$tmp/token-0644"
check "a token file open to others is accepted with a warning" \
  "grep -q 'WARN .*--auth-token-file $tmp/token-0644 is open to group or others (mode 0644): chmod 600' '$tmp/token_open.log'"
check "a token without TLS is warned about" \
  "grep -q 'WARN .*--auth-token-file without --tls-cert: the token travels in clear text' '$tmp/token_open.log'"
stop_server token_open

check "the token appears in no log or output of any program" \
  "! grep -rlF -- '$token' '$tmp'/*.log '$tmp'/*.out"
check "the server at --log-level debug logged gRPC's own lines (the check above saw them)" \
  "grep -q 'DEBUG grpc:' '$tmp/token.log'"
check "no sanitizer reports in any log" "no_sanitizer_reports $tmp/*.log"

if [ $fails -ne 0 ]; then
  for f in "$tmp"/*.log; do echo "---- $f"; grep -v ' DEBUG ' "$f" | tail -4; done
fi
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
