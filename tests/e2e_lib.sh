# Shared by the shell tests that run siam's programs (source it after setting bin; then either
# call e2e_begin or set tmp and `fails=0 checks=0 pids=()` yourself):
#   e2e_begin                   a temp dir in $tmp, removed at exit with every pid in pids killed;
#                               fails=0 checks=0; no HTTP proxy (the servers are on 127.0.0.1)
#   check DESCRIPTION COMMAND   runs COMMAND quietly, prints "ok" or "FAIL", counts
#   json_field FILE KEY         the number after "KEY": in a JSON report
#   no_sanitizer_reports FILES  true when no ASan/LSan/UBSan report is in FILES
#   start_server NAME ARGS...   siam-server on a free 127.0.0.1 port, stdout/stderr in
#                               $tmp/NAME.out and $tmp/NAME.log; sets port and server_pid, adds
#                               the pid to pids (for the caller's cleanup)
#   is_sanitizer_build BINARY   true when BINARY was built with ASan/UBSan (gcc or clang)
#   python_stubs DIR            Debian's /usr/bin/python3 can import grpc and protobuf, and DIR
#                               holds protoc's Python code for siam.proto and health.proto; else
#                               the test fails naming what to install
#   wait_for FILE PATTERN SECS  true once grep finds PATTERN in FILE, false after SECS seconds
e2e_begin() {
  tmp=$(mktemp -d)
  pids=()
  trap e2e_cleanup EXIT
  fails=0 checks=0
  unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY grpc_proxy no_grpc_proxy
}
e2e_cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
check() {
  checks=$((checks + 1))
  if ( eval "$2" ) >/dev/null 2>&1; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}
json_field() {
  sed -n "s/.*\"$2\": \([0-9.eE+-]*\).*/\1/p" "$1"
}
no_sanitizer_reports() { ! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$@"; }
start_server() {
  local name=$1; shift
  "$bin/siam-server" --listen 127.0.0.1:0 --grace 2 "$@" >"$tmp/$name.out" 2>"$tmp/$name.log" &
  server_pid=$!
  pids+=("$server_pid")
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/$name.out")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "FAIL server did not start:"; cat "$tmp/$name.log"; exit 1; }
}

# is_sanitizer_build BINARY: 0 when BINARY was built with ASan/UBSan. gcc links libasan.so;
# clang links its runtime statically and exports __asan_init (grep without -q: nm killed by
# SIGPIPE would fail a pipefail pipeline).
is_sanitizer_build() {
  ldd "$1" | grep -q 'lib\(a\|ub\)san\.so' || nm -D "$1" 2>/dev/null | grep ' __asan_init$' >/dev/null
}

python_stubs() {
  local dir=$1 root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  /usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null ||
    { echo "FAIL /usr/bin/python3 cannot import grpc and google.protobuf: run scripts/install-deps.sh"; exit 1; }
  command -v protoc >/dev/null || { echo "FAIL protoc not found: run scripts/install-deps.sh"; exit 1; }
  mkdir -p "$dir"
  (cd "$root" && protoc -I proto --python_out="$dir" proto/siam/v1/siam.proto \
    proto/grpc/health/v1/health.proto) || { echo "FAIL protoc --python_out failed"; exit 1; }
}

wait_for() {
  local end=$(($(date +%s) + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.05
  done
}
