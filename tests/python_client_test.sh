#!/usr/bin/env bash
# python_client_test: the Python client library (clients/python, import siam_client) as a user
# installs it, against real siam-server processes on 127.0.0.1:
#   1. clients/python and proto/ are copied as a clean clone lays them out, and the copy is
#      installed offline into a venv that sees Debian's python3-grpcio and python3-protobuf
#      (python3 -m venv --system-site-packages; pip install --no-build-isolation --no-index):
#      the build generates the message classes with protoc; nothing is written into the tree;
#   2. an sdist of the copy carries the .proto files and installs outside the repository;
#   3. clients/python/tests (unittest) against five servers: plain (--max-message-mb 1), with a
#      model (image Similarity), with a model and an empty gallery (--gallery-max 40: search and
#      add_to_gallery, Search's distances against image Similarity's, the vote computed in
#      Python), with a bearer token, with TLS and the token (certificates made with openssl
#      here): distances against Python's, every error class, the server's messages;
#   4. examples/python/siam_similarity.py, the library's short example, against the plain server;
#      examples/python/siam_few_shot.py against a server with a model and an empty gallery.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
export PYTHONDONTWRITEBYTECODE=1 # nothing written into the tree (clients/python/tests, examples/)
t_start=$(date +%s.%N)

# ---- prerequisites: Debian's packages, never skipped ----
python_stubs "$tmp/stubs"
for m in venv pip setuptools; do
  "$py" -c "import $m" 2>/dev/null ||
    { echo "FAIL $py cannot import $m: run scripts/install-deps.sh (python3-venv python3-pip python3-setuptools)"; exit 1; }
done
command -v openssl >/dev/null || { echo "FAIL openssl not found; run scripts/install-deps.sh"; exit 1; }

# ---- 1. install a copy laid out like a clean clone ----
mkdir -p "$tmp/repo/clients"
cp -r "$root/proto" "$tmp/repo/proto"
(cd "$root/clients" && tar --exclude=build --exclude='*.egg-info' --exclude=__pycache__ -cf - python) |
  (cd "$tmp/repo/clients" && tar -xf -)
"$py" -m venv --system-site-packages "$tmp/venv" >"$tmp/venv.log" 2>&1 ||
  { cat "$tmp/venv.log"; echo "FAIL python3 -m venv failed (python3-venv)"; exit 1; }
vpy=$tmp/venv/bin/python
check "pip install --no-build-isolation --no-index ./clients/python (offline, protoc in the build)" \
  "'$vpy' -m pip install --no-build-isolation --no-index --no-cache-dir '$tmp/repo/clients/python' >'$tmp/pip.log' 2>&1"
check "the installed package holds the generated siam_pb2 and health_pb2" \
  "'$vpy' -c 'import siam_client._client as c; import sys; sys.exit(not c.SIAM_METHODS[\"Similarity\"] == \"/siam.v1.Siamese/Similarity\")'"
check "nothing generated in the copy's sources (only pip's build/ and egg-info)" \
  "[ -z \"\$(find '$tmp/repo/clients/python' -name '*_pb2.py' -not -path '*/build/*')\" ]"
check "nothing generated or built in the repository's clients/python" \
  "[ -z \"\$(find '$root/clients/python' -name '*_pb2.py')\" ]"

# ---- 2. an sdist carries the protos and builds away from the repository ----
check "sdist: made from the copy, holds proto/siam/v1/siam.proto, installs into another venv" \
  "cd '$tmp/repo/clients/python' && '$vpy' setup.py -q sdist -d '$tmp/dist' >'$tmp/sdist.log' 2>&1 &&
   tar -tzf '$tmp/dist/siam-client-0.1.0.tar.gz' >'$tmp/sdist.list' &&
   grep -qx 'siam-client-0.1.0/proto/siam/v1/siam.proto' '$tmp/sdist.list' &&
   '$py' -m venv --system-site-packages '$tmp/venv2' &&
   cd '$tmp' && '$tmp/venv2/bin/python' -m pip install --no-build-isolation --no-index --no-cache-dir '$tmp/dist/siam-client-0.1.0.tar.gz' >>'$tmp/sdist.log' 2>&1 &&
   '$tmp/venv2/bin/python' -c 'import siam_client'"
[ -s "$tmp/pip.log" ] && grep -q 'Successfully installed siam-client' "$tmp/pip.log" ||
  { tail -n 30 "$tmp/pip.log"; echo "FAIL the library did not install; the rest cannot run"; exit 1; }

# ---- certificates for the TLS server ----
pki=$tmp/pki
mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/ca.key" \
  -out "$pki/ca.pem" -days 30 -subj "/CN=siam test CA" 2>/dev/null &&
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/server.key" \
  -out "$pki/server.csr" -subj "/CN=localhost" 2>/dev/null &&
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$pki/server.ext" &&
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
  -out "$pki/server.pem" -days 30 -extfile "$pki/server.ext" 2>/dev/null ||
  { echo "FAIL cannot make the test certificates with openssl"; exit 1; }
chmod 600 "$pki"/*.key
printf 'pyclient-%s\n' "$RANDOM$RANDOM" >"$tmp/token"
chmod 600 "$tmp/token"

# ---- 3. the library's tests against four servers ----
start_server plain --max-message-mb 1
plain=127.0.0.1:$port plain_pid=$server_pid
start_server model --model mlp --seed 3
model=127.0.0.1:$port model_pid=$server_pid
start_server gallery --model mlp --seed 3 --gallery-max 40
gallery=127.0.0.1:$port gallery_pid=$server_pid
start_server token --auth-token-file "$tmp/token"
token=127.0.0.1:$port token_pid=$server_pid
start_server tls --tls-cert "$pki/server.pem" --tls-key "$pki/server.key" --auth-token-file "$tmp/token"
tls=127.0.0.1:$port tls_pid=$server_pid
echo "-- clients/python/tests"
(cd "$tmp" && SIAM_TEST_SERVER=$plain SIAM_TEST_MODEL_SERVER=$model SIAM_TEST_GALLERY_SERVER=$gallery \
  SIAM_TEST_TOKEN_SERVER=$token \
  SIAM_TEST_TOKEN=$(cat "$tmp/token") SIAM_TEST_TLS_SERVER=$tls SIAM_TEST_TLS_CA=$pki/ca.pem \
  SIAM_TEST_STUBS=$tmp/stubs timeout 300 "$vpy" -m unittest discover -s "$root/clients/python/tests" -v) \
  >"$tmp/unittest.out" 2>&1
urc=$?
sed 's/^/  /' "$tmp/unittest.out"
check "clients/python/tests: all pass, no server's tests skipped (numpy's may be) (exit $urc)" \
  "[ $urc -eq 0 ] && grep -Eq '^OK( \\(skipped=[0-9]+\\))?$' '$tmp/unittest.out' &&
   ! grep -q \"skipped 'SIAM_TEST\" '$tmp/unittest.out'"

# ---- 4. the example ----
(cd "$tmp" && timeout 60 "$vpy" "$root/examples/python/siam_similarity.py" --server "$plain") >"$tmp/example.out" 2>&1
erc=$?
sed 's/^/  /' "$tmp/example.out"
check "examples/python/siam_similarity.py: exit 0, health SERVING, identical pair at 0 / score 1" \
  "[ $erc -eq 0 ] && grep -q '^health: SERVING$' '$tmp/example.out' &&
   grep -Eq '^  identical +0\.0000 +1\.0000 +yes$' '$tmp/example.out' &&
   grep -Eq '^  at margin/2 +0\.5000 +0\.5000 +yes$' '$tmp/example.out'"
(cd "$tmp" && timeout 60 "$vpy" "$root/examples/python/siam_similarity.py" --server "$token") >"$tmp/example_nt.out" 2>&1
erc=$?
check "the example without the token: exit 1, UNAUTHENTICATED with the server's message (rc $erc)" \
  "[ $erc -eq 1 ] && grep -q '^siam_similarity.py: UNAUTHENTICATED: this server requires a bearer token' '$tmp/example_nt.out'"
(cd "$tmp" && timeout 60 "$vpy" "$root/examples/python/siam_similarity.py" --server "localhost:${tls##*:}" \
  --tls-ca "$pki/ca.pem" --auth-token-file "$tmp/token") >"$tmp/example_tls.out" 2>&1
check "the example with TLS and the token: exit 0" "grep -q '^health: SERVING$' '$tmp/example_tls.out'"
start_server few --model mlp --seed 3
few_pid=$server_pid
(cd "$tmp" && timeout 60 "$vpy" "$root/examples/python/siam_few_shot.py" --server "127.0.0.1:$port" \
  --data "${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}") >"$tmp/few.out" 2>&1
erc=$?
sed 's/^/  /' "$tmp/few.out"
check "examples/python/siam_few_shot.py: exit 0, 5 Bags and 5 Ankle boots added (ids 0..4, 5..9), 10 searches, a count per class" \
  "[ $erc -eq 0 ] && grep -q '^added 5 images of Bag .* as \"new-Bag\": ids 0..4, gallery of 5 items' '$tmp/few.out' &&
   grep -q '^added 5 images of Ankle boot .* as \"new-Ankle boot\": ids 5..9, gallery of 10 items' '$tmp/few.out' &&
   [ \$(grep -c '^  test image' '$tmp/few.out') -eq 10 ] && grep -Eq '^Bag: [0-5] of 5 predicted \"new-Bag\"' '$tmp/few.out' &&
   grep -Eq '^Ankle boot: [0-5] of 5 predicted \"new-Ankle boot\"' '$tmp/few.out'"
for name in plain model gallery few token tls; do # SIGTERM: exit 0 (LeakSanitizer checks at exit)
  pidvar=${name}_pid
  kill -TERM "${!pidvar}" 2>/dev/null
  wait "${!pidvar}"
  check "server $name exits 0 on SIGTERM (rc $?)" "[ $? -eq 0 ]"
done
check "no sanitizer report in the servers' logs" \
  "no_sanitizer_reports '$tmp/plain.log' '$tmp/model.log' '$tmp/gallery.log' '$tmp/few.log' '$tmp/token.log' '$tmp/tls.log'"
check "the token is in no server log" "! grep -qF '$(cat "$tmp/token")' '$tmp'/*.log"

echo "python_client_test: $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t_start}") s"
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ] || exit 1
