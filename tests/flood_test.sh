#!/usr/bin/env bash
# flood_test: siam-server's listener and stop against connections that never make a call, for
# real: siam-server processes on 127.0.0.1, raw TCP connections and Python grpcio callers.
#   1. a flood: under `ulimit -n 64` (soft and hard), 150 TCP connections that never send a byte
#      are held open; new connections beyond the open-file limit are refused as they arrive (a
#      rate-limited warning says so) and, once the flood closes its connections, a new Status
#      call succeeds within seconds (gRPC 1.51 alone stops listening for good after EMFILE);
#   2. --handshake-timeout 1 closes connections that send nothing after about a second;
#   3. SIGTERM with --grace 20 while a client holds an idle connection (a stopped process, which
#      cannot answer the server's GOAWAY ping) exits 0 within 5 s: no call is open, so there is
#      nothing to wait for.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
now() { date +%s.%N; }
secs() { awk "BEGIN{printf \"%.2f\", $2 - $1}"; }

cat >"$tmp/conns.py" <<'EOF'
"""conns.py PORT N: opens up to N TCP connections that send nothing and prints "opened K"; then
either holds them until stdin closes and prints "closed" (mode hold), or waits until the server
closes every one of them and prints "all closed by the server after S s" (mode until-closed)."""
import select, socket, sys, time
port, n, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for _ in range(n):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except OSError as e:
        print("connect failed:", e, flush=True)
        break
    socks.append(s)
t0 = time.time()
print("opened", len(socks), flush=True)
if mode == "hold":
    sys.stdin.read()
    for s in socks:
        s.close()
    print("closed", flush=True)
else:
    open_ = set(socks)
    while open_ and time.time() - t0 < 30:
        ready, _, _ = select.select(list(open_), [], [], 0.1)
        for s in ready:
            try:
                if not s.recv(4096):
                    open_.discard(s)
            except OSError:
                open_.discard(s)
    print("all closed by the server after %.2f s" % (time.time() - t0) if not open_
          else "%d still open after 30 s" % len(open_), flush=True)
EOF
cat >"$tmp/status.py" <<'EOF'
"""status.py PORT TIMEOUT [hold]: one Status call on a new channel; prints OK or the code. With
hold, keeps the channel (and its connection) open afterwards until killed."""
import sys, time
import grpc
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
try:
    ch.unary_unary("/siam.v1.Siamese/Status")(b"", timeout=float(sys.argv[2]))
    print("OK", flush=True)
except grpc.RpcError as e:
    print(e.code().name, flush=True)
    sys.exit(1)
if len(sys.argv) > 3:
    time.sleep(3600)
EOF

# ---- 1. a flood of idle connections up to the open-file limit ---------------------------------
# ulimit -n sets the soft and the hard limit: the server cannot raise it
(ulimit -n 64 && exec "$bin/siam-server" --listen 127.0.0.1:0 --grace 2 --handshake-timeout 60) \
  >"$tmp/flood.out" 2>"$tmp/flood.log" &
server_pid=$!
pids+=("$server_pid")
wait_for "$tmp/flood.out" "listening on" 10 || { echo "FAIL server did not start"; cat "$tmp/flood.log"; exit 1; }
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/flood.out")
check "the server logs its open-file limit (64, the hard limit)" \
  "grep -q 'open files: limit 64 (the hard limit' '$tmp/flood.log'"
check "Status answers before the flood" "'$py' '$tmp/status.py' $port 5"

mkfifo "$tmp/hold"
"$py" "$tmp/conns.py" "$port" 150 hold <"$tmp/hold" >"$tmp/conns.out" 2>&1 &
flood_pid=$!
pids+=("$flood_pid")
exec 7>"$tmp/hold"
wait_for "$tmp/conns.out" "opened" 20
opened=$(sed -n 's/^opened \([0-9]*\)/\1/p' "$tmp/conns.out")
check "the flood holds well over 64 connections (${opened:-0})" "[ ${opened:-0} -ge 100 ]"
fds=$(ls "/proc/$server_pid/fd" 2>/dev/null | wc -l)
during=$("$py" "$tmp/status.py" "$port" 2 2>/dev/null)
echo "     during the flood: the server has $fds descriptors open; Status: ${during:-no answer}"
check "a refusal is logged (rate-limited, with counts and the limit)" \
  "grep -q 'WARN  rpc: refusing new connections: [0-9]* closed as they arrived.*RLIMIT_NOFILE) 64' '$tmp/flood.log'"
exec 7>&-                    # the flood closes its connections
wait "$flood_pid"
t0=$(now)
ok=0
for _ in $(seq 10); do
  "$py" "$tmp/status.py" "$port" 1 >/dev/null 2>&1 && { ok=1; break; }
done
t1=$(now)
check "after the flood Status answers again ($(secs "$t0" "$t1") s)" \
  "[ $ok -eq 1 ] && awk 'BEGIN{exit !($t1 - $t0 < 5)}'"
check "one warning line for the whole burst (rate-limited)" \
  "[ \$(grep -c 'refusing new connections' '$tmp/flood.log') -eq 1 ]"
check "the recovery is logged" \
  "wait_for '$tmp/flood.log' 'accepting connections again: [0-9]* were refused' 5"
kill -TERM "$server_pid"
wait "$server_pid"
check "the server stops cleanly after the flood (exit $?)" "[ $? -eq 0 ]"

# ---- 2. the handshake timeout closes connections that send nothing -----------------------------
start_server hs --handshake-timeout 1
"$py" "$tmp/conns.py" "$port" 5 until-closed >"$tmp/hs.out" 2>&1
after=$(sed -n 's/^all closed by the server after \([0-9.]*\) s/\1/p' "$tmp/hs.out")
check "--handshake-timeout 1 closes 5 idle connections after about 1 s (${after:-never})" \
  "[ -n '$after' ] && awk 'BEGIN{exit !($after >= 0.8 && $after < 4)}'"
check "Status still answers" "'$py' '$tmp/status.py' $port 5"
kill -TERM "$server_pid"
wait "$server_pid"

# ---- 3. SIGTERM while a client holds an idle connection ----------------------------------------
start_server idle --grace 20
"$py" "$tmp/status.py" "$port" 5 hold >"$tmp/idle_client.out" 2>&1 &
client_pid=$!
pids+=("$client_pid")
wait_for "$tmp/idle_client.out" "OK" 10
kill -STOP "$client_pid" # its connection stays, and nothing on it answers
t0=$(now)
kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
t1=$(now)
kill -CONT "$client_pid"
kill "$client_pid"
wait "$client_pid" 2>/dev/null
check "SIGTERM with an idle connection and --grace 20: exit 0 (rc $rc)" "[ $rc -eq 0 ]"
check "... within 5 s ($(secs "$t0" "$t1") s)" "awk 'BEGIN{exit !($t1 - $t0 < 5)}'"
check "no call was cancelled" "grep -q '0 call(s) cancelled' '$tmp/idle.log'"

for f in "$tmp"/*.log; do
  check "no sanitizer report in $(basename "$f")" "no_sanitizer_reports '$f'"
done
echo "flood_test: $((checks - fails))/$checks checks passed"
[ "$fails" -eq 0 ]
