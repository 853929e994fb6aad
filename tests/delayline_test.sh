#!/usr/bin/env bash
# delayline_test: siam-delayline alone on loopback, measured by Python's sockets (not by the
# relay's companion siam-linkprobe, which is checked against them here):
#   1. a tiny link, --rate-mbit 20 --delay-ms 20 (40 ms round trip): 1-byte round trips through
#      the relay take the direct round trip + 40 ms (none shorter: the delay is never cut short;
#      the median at most 15 % over);
#   2. 4 MB up and 4 MB down arrive intact, each at 20 Mbit/s within 10 % (payload rate; the
#      time of the transfer less one round trip);
#   3. half-closes cross the relay in both directions, and no sooner than the delay;
#   4. siam-linkprobe measure through the same relay to a siam-linkprobe serve agrees with
#      Python: its round trip within 15 %, its rates within 10 %;
#   5. no --connect: exit 2; an upstream that refuses: the client's connection is closed and the
#      relay says why.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin

start_tool() { # start_tool NAME PROGRAM ARGS...: sets tool_port, adds the pid to pids
  local name=$1; shift
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.log" &
  pids+=("$!")
  tool_pid=$!
  tool_port=""
  for _ in $(seq 100); do
    tool_port=$(sed -n 's/.* listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/$name.out")
    [ -n "$tool_port" ] && break
    sleep 0.1
  done
  [ -n "$tool_port" ] || { echo "FAIL $name did not start:"; cat "$tmp/$name.log"; exit 1; }
}

# the far end: a Python server (round trips, bulk in both directions with a checked pattern)
cat >"$tmp/far.py" <<'EOF'
import socket, sys, threading
PAT = bytes((i * 131 + (i >> 8) * 7) & 255 for i in range(65521))
BULK = 4_000_000
DATA = (PAT * (BULK // len(PAT) + 1))[:BULK]  # made once: not on the clock of a transfer
def pattern(off, n):
    return DATA[:n] if off == 0 and n <= BULK else (PAT * ((off + n) // len(PAT) + 1))[off:off + n]
def recv_exact(c, n):
    buf = bytearray()
    while len(buf) < n:
        b = c.recv(min(1 << 20, n - len(buf)))
        if not b: raise EOFError
        buf += b
    return bytes(buf)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            cmd = c.recv(1)
            if not cmd:  # the client half-closed: say so by closing our side too
                c.shutdown(socket.SHUT_WR); break
            n = int.from_bytes(recv_exact(c, 8), "big")
            if cmd == b"P": c.sendall(b"p")
            elif cmd == b"U":
                ok = recv_exact(c, n) == pattern(0, n)
                c.sendall(b"1" if ok else b"0")
            elif cmd == b"D": c.sendall(pattern(0, n))
    except (EOFError, OSError):
        pass
    c.close()
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(f"far listening on 127.0.0.1:{s.getsockname()[1]}", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
start_tool far /usr/bin/python3 "$tmp/far.py"
far_port=$tool_port
start_tool relay "$bin/siam-delayline" --listen 127.0.0.1:0 --connect "127.0.0.1:$far_port" \
  --rate-mbit 20 --delay-ms 20
relay_port=$tool_port
echo "Python server on $far_port, siam-delayline (20 Mbit/s, 20 ms each way) on $relay_port"

/usr/bin/python3 - "$far_port" "$relay_port" >"$tmp/py.out" 2>&1 <<'EOF'
import socket, statistics, sys, time
far, relay = int(sys.argv[1]), int(sys.argv[2])
PAT = bytes((i * 131 + (i >> 8) * 7) & 255 for i in range(65521))
def pattern(n):
    return (PAT * (n // len(PAT) + 1))[:n]
def conn(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c
def recv_exact(c, n):
    buf = bytearray()
    while len(buf) < n:
        b = c.recv(min(1 << 20, n - len(buf)))
        if not b: raise EOFError
        buf += b
    return bytes(buf)
def rtts(c, n):
    out = []
    for i in range(n + 3):
        t0 = time.perf_counter(); c.sendall(b"P" + (1).to_bytes(8, "big")); recv_exact(c, 1)
        if i >= 3: out.append(time.perf_counter() - t0)
    return out
fails = 0
def check(what, ok):
    global fails
    print(("ok   " if ok else "FAIL ") + what); fails += 0 if ok else 1

d = conn(far); direct = statistics.median(rtts(d, 30)); d.close()
c = conn(relay); via = rtts(c, 30)
added_med, added_min = (statistics.median(via) - direct) * 1e3, (min(via) - direct) * 1e3
print(f"round trip: direct {direct * 1e3:.3f} ms, via the relay median {statistics.median(via) * 1e3:.2f} "
      f"ms (min {min(via) * 1e3:.2f}): added {added_med:.2f} ms (min {added_min:.2f}), claimed 40")
check(f"no round trip is shorter than the claimed 40 ms (shortest {min(via) * 1e3:.2f} ms)",
      min(via) * 1e3 >= 40.0)
check(f"the median added round trip {added_med:.2f} ms is 40 ms within 15 %", 40.0 * 0.85 <= added_med <= 40.0 * 1.15)
rtt = statistics.median(via)
n = 4_000_000
msg = b"U" + n.to_bytes(8, "big") + pattern(n)
t0 = time.perf_counter(); c.sendall(msg); ok = recv_exact(c, 1)
up = n * 8 / (time.perf_counter() - t0 - rtt) / 1e6
t0 = time.perf_counter(); c.sendall(b"D" + n.to_bytes(8, "big")); data = recv_exact(c, n)
down = n * 8 / (time.perf_counter() - t0 - rtt) / 1e6
print(f"rate: {n} bytes up at {up:.2f} Mbit/s, down at {down:.2f} Mbit/s; claimed 20")
check("the upload arrived intact", ok == b"1")
check("the download arrived intact", data == pattern(n))
check(f"upload rate {up:.2f} Mbit/s is 20 within 10 %", 18.0 <= up <= 22.0)
check(f"download rate {down:.2f} Mbit/s is 20 within 10 %", 18.0 <= down <= 22.0)
# half-close: ours reaches the server after the delay, the server's reaches us after the delay
t0 = time.perf_counter(); c.shutdown(socket.SHUT_WR)
eof = c.recv(1); waited = (time.perf_counter() - t0) * 1e3
check(f"a half-close crosses the relay both ways, after the delay ({waited:.1f} ms >= 40)",
      eof == b"" and waited >= 40.0)
c.close()
print(f"python: rtt_ms {rtt * 1e3:.3f} up_mbit {up:.3f} down_mbit {down:.3f}")
sys.exit(1 if fails else 0)
EOF
prc=$?
cat "$tmp/py.out"
checks=$((checks + $(grep -c '^ok \|^FAIL' "$tmp/py.out")))
fails=$((fails + $(grep -c '^FAIL' "$tmp/py.out")))
[ $prc -eq 0 ] || grep -q '^FAIL' "$tmp/py.out" || { echo "FAIL the Python checks did not run (rc $prc)"; fails=$((fails + 1)); }

# siam-linkprobe through the same relay, against Python's figures
start_tool probe "$bin/siam-linkprobe" serve --listen 127.0.0.1:0
start_tool relay2 "$bin/siam-delayline" --listen 127.0.0.1:0 --connect "127.0.0.1:$tool_port" \
  --rate-mbit 20 --delay-ms 20
"$bin/siam-linkprobe" measure --server "127.0.0.1:$tool_port" --pings 30 --bytes 4000000 --json \
  >"$tmp/probe.json" 2>"$tmp/probe.err"
rc=$?
cat "$tmp/probe.json" "$tmp/probe.err"
py_rtt=$(sed -n 's/.*rtt_ms \([0-9.]*\).*/\1/p' "$tmp/py.out")
py_up=$(sed -n 's/.*up_mbit \([0-9.]*\).*/\1/p' "$tmp/py.out")
py_down=$(sed -n 's/.*down_mbit \([0-9.]*\).*/\1/p' "$tmp/py.out")
within() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { exit !(a != "" && b > 0 && a >= b * (1 - t) && a <= b * (1 + t)) }'; }
check "siam-linkprobe measure exits 0 and finds the data intact (rc $rc)" \
  "[ $rc -eq 0 ] && grep -q '\"intact\": 1' '$tmp/probe.json'"
check "siam-linkprobe's round trip $(json_field "$tmp/probe.json" rtt_ms) ms = Python's ${py_rtt:-?} within 15 %" \
  "within '$(json_field "$tmp/probe.json" rtt_ms)' '${py_rtt:-0}' 0.15"
check "siam-linkprobe's upload $(json_field "$tmp/probe.json" up_mbit) Mbit/s = Python's ${py_up:-?} within 10 %" \
  "within '$(json_field "$tmp/probe.json" up_mbit)' '${py_up:-0}' 0.10"
check "siam-linkprobe's download $(json_field "$tmp/probe.json" down_mbit) Mbit/s = Python's ${py_down:-?} within 10 %" \
  "within '$(json_field "$tmp/probe.json" down_mbit)' '${py_down:-0}' 0.10"

# bad usage and a refusing upstream
"$bin/siam-delayline" --listen 127.0.0.1:0 >"$tmp/bad.out" 2>&1
rc=$?
check "no --connect: exit 2 naming it (rc $rc)" "[ $rc -eq 2 ] && grep -q -- '--connect' '$tmp/bad.out'"
closed_port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_tool refused "$bin/siam-delayline" --listen 127.0.0.1:0 --connect "127.0.0.1:$closed_port"
check "an upstream that refuses: the client sees its connection closed" \
  "/usr/bin/python3 -c 'import socket; c = socket.create_connection((\"127.0.0.1\", $tool_port), timeout=5); assert c.recv(1) == b\"\"'"
check "... and the relay says why" \
  "wait_for '$tmp/refused.log' 'cannot connect to 127.0.0.1:$closed_port' 5"
kill -TERM "$tool_pid"
wait "$tool_pid"
rc=$?
check "SIGTERM: exit 0 with the totals (rc $rc)" "[ $rc -eq 0 ] && grep -q 'stopped: ' '$tmp/refused.log'"
check "no sanitizer reports" "no_sanitizer_reports $tmp/*.log"
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
