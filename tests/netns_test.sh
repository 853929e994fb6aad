#!/usr/bin/env bash
# netns_test: split training across real (virtual) hosts. Network namespaces stand in for hosts:
#
#     ns srv  10.213.77.1  ──veth──┐
#     ns w0   10.213.77.11 ──veth──┼── bridge br0 in its own ns (the "switch")
#     ns w1   10.213.77.12 ──veth──┘
#
# siam-server listens on 10.213.77.1 only (inside ns srv); two siam-client workers, one in each
# worker namespace, train the mlp for one small epoch through it. Checks:
#   1. both workers exit 0 and print their final report;
#   2. the server logged both workers' Train streams with peers 10.213.77.11 and 10.213.77.12,
#      so the traffic crossed the veth links and the bridge, not loopback;
#   3. the server is not reachable from the root namespace on 127.0.0.1 at its port;
#   4. a worker pointed at an address in the subnet where nobody answers fails within its
#      --timeout with a message naming that address.
# Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2; otherwise it exits 77, which ctest
# reports as skipped. The host's own network is untouched: the bridge lives in a namespace too,
# and every namespace and link is deleted on exit, also on failure.
set -uo pipefail
SKIP=77
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: netns_test needs root to create network namespaces (run as root)"
  exit $SKIP
fi
if ! command -v ip >/dev/null 2>&1; then
  echo "SKIP: netns_test needs iproute2's ip command (scripts/install-deps.sh installs it)"
  exit $SKIP
fi

# The workers average their weights on the server every 10 steps, and the server waits for both
# before the first step; every worker / the server gets these flags.
extra_worker_flags=(--sync-every 10)
extra_server_flags=(--min-workers 2)

subnet=10.213.77          # private /24 that exists only inside these namespaces
server_ip=$subnet.1
worker_ip=("$subnet.11" "$subnet.12")
nobody_ip=$subnet.99      # in the subnet, no namespace holds it
tag="siam$$"              # unique per run: parallel runs do not collide
ns_br="$tag-br" ns_srv="$tag-srv" ns_w=("$tag-w0" "$tag-w1")
all_ns=("$ns_br" "$ns_srv" "${ns_w[@]}")
# ip netns exec keeps this shell's environment, but be explicit about what the programs need
run_env=(env "OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}"
         "ASAN_OPTIONS=${ASAN_OPTIONS:-}" "UBSAN_OPTIONS=${UBSAN_OPTIONS:-}")

tmp=$(mktemp -d)
pids=()
made_ns=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for ns in "${made_ns[@]}"; do
    # anything still running inside (only this test's processes can be there)
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null   # deleting a namespace deletes its veth ends and the bridge
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the network ----------------------------------------------------------------------------
if ! ip netns add "$ns_br" 2>"$tmp/netns.err"; then
  echo "SKIP: netns_test cannot create a network namespace ($(head -1 "$tmp/netns.err")); it needs" \
       "CAP_SYS_ADMIN, e.g. a container started without --privileged"
  exit $SKIP
fi
made_ns+=("$ns_br")
setup() { # run one ip command; on failure print it and its error and exit 1
  if ! "$@" 2>"$tmp/ip.err"; then
    echo "FAIL network setup: $*: $(cat "$tmp/ip.err")"
    exit 1
  fi
}
setup ip -n "$ns_br" link set lo up
setup ip -n "$ns_br" link add br0 type bridge
setup ip -n "$ns_br" link set br0 up
attach() { # attach NS ADDRESS PORTNAME: NS gets eth0 with ADDRESS/24, its peer PORTNAME on br0
  setup ip netns add "$1"
  made_ns+=("$1")
  setup ip -n "$1" link set lo up
  setup ip -n "$ns_br" link add "$3" type veth peer name eth0 netns "$1"
  setup ip -n "$ns_br" link set "$3" master br0
  setup ip -n "$ns_br" link set "$3" up
  setup ip -n "$1" addr add "$2/24" dev eth0
  setup ip -n "$1" link set eth0 up
}
attach "$ns_srv" "$server_ip" p-srv
attach "${ns_w[0]}" "${worker_ip[0]}" p-w0
attach "${ns_w[1]}" "${worker_ip[1]}" p-w1
echo "namespaces ${all_ns[*]}: server $server_ip, workers ${worker_ip[*]} on bridge br0"

fails=0 checks=0
source "$(dirname "$0")/e2e_lib.sh"
in_ns() { # in_ns NS PROGRAM ARGS...: become a siam program inside NS (ip and env exec it, so
          # `in_ns ... &` leaves its pid in $!); call it in the foreground as `( in_ns ... )`
  local ns=$1 prog=$2
  shift 2
  exec ip netns exec "$ns" "${run_env[@]}" "$bin/$prog" "$@"
}

# ---- the server -----------------------------------------------------------------------------
in_ns "$ns_srv" siam-server --listen "$server_ip:0" --grace 2 "${extra_server_flags[@]}" \
  >"$tmp/server.out" 2>"$tmp/server.log" &
server_pid=$!
pids+=("$server_pid")
port=""
for _ in $(seq 300); do   # up to 30 s: the sanitizer build starts slowly
  port=$(sed -n "s/.*listening on ${server_ip//./\\.}:\([0-9]*\).*/\1/p" "$tmp/server.out")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { echo "FAIL server did not start in $ns_srv:"; cat "$tmp/server.out" "$tmp/server.log"; exit 1; }
echo "server in $ns_srv listening on $server_ip:$port"

# ---- 1. two workers in their own namespaces -------------------------------------------------
common=(--server "$server_ip:$port" --model mlp --epochs 1 --train-limit 6000 --test-limit 1000
        --batch-size 128 --workers 2 --threads 1 --timeout 60 --data "$data" --json)
for i in 0 1; do
  in_ns "${ns_w[$i]}" siam-client "${common[@]}" --worker-index $i --worker-id "netns-w$i" \
    "${extra_worker_flags[@]}" >"$tmp/w$i.json" 2>"$tmp/w$i.log" &
  wpid[i]=$!
  pids+=("${wpid[$i]}")
done
for i in 0 1; do
  wait "${wpid[$i]}"
  rc[i]=$?
done
sleep 0.5   # the server logs a stream's summary once it has closed it
for i in 0 1; do
  check "worker $i (${worker_ip[$i]}) exits 0 (rc ${rc[$i]})" "[ ${rc[$i]} -eq 0 ]"
  auc=$(json_field "$tmp/w$i.json" roc_auc)
  pairs=$(json_field "$tmp/w$i.json" train_pairs)
  echo "     worker $i: ${pairs:-?} training pairs, ROC AUC ${auc:-?}"
  check "worker $i printed its final report" \
    "[ -n '$auc' ] && [ -n '$pairs' ] && grep -q 'done: .* batches' '$tmp/w$i.log'"
  check "server logged worker $i's stream from ${worker_ip[$i]} ended OK" \
    "grep -q 'stream of netns-w$i (ipv4:${worker_ip[$i]}:[0-9]*) ended OK' '$tmp/server.log'"
done
echo "     server's peers: $(grep -o 'stream of [^ ]* ([^)]*)' "$tmp/server.log" | tr '\n' ' ')"
check "no stream came over loopback" "! grep -q 'ipv4:127\.' '$tmp/server.log'"
check "the workers averaged their weights across hosts (rounds of 2 workers)" \
  "grep -q 'round 2 closed: 2 worker(s)' '$tmp/server.log'"

# ---- 2. not reachable from the root namespace -----------------------------------------------
# The server's socket lives in ns srv: on 127.0.0.1 (root namespace) nothing of it listens.
check "server not reachable from the root namespace on 127.0.0.1:$port" \
  "! timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$port'"

# ---- 3. a wrong address in the subnet -------------------------------------------------------
# Nobody answers ARP for it: the connection never completes, the worker (not retrying:
# --retry-for 0) gives up after its --timeout (5 s) and names the address.
t0=$(date +%s.%N)
( in_ns "${ns_w[0]}" siam-client --server "$nobody_ip:$port" --epochs 1 --train-limit 600 \
  --test-limit 100 --timeout 5 --retry-for 0 --data "$data" >/dev/null 2>"$tmp/nobody.log" )
nrc=$?
t1=$(date +%s.%N)
secs=$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")
check "worker pointed at $nobody_ip exits 1 (rc $nrc)" "[ $nrc -eq 1 ]"
check "worker pointed at $nobody_ip names it" \
  "grep -q 'cannot reach siam-server at $nobody_ip:$port' '$tmp/nobody.log'"
# 5 s timeout + data loading and process start (slower under the sanitizers)
check "worker pointed at $nobody_ip gives up within its timeout ($secs s)" \
  "awk 'BEGIN{exit !($secs < 20)}'"

# ---- server shutdown ------------------------------------------------------------------------
kill -TERM "$server_pid"
wait "$server_pid"
src=$?
check "server exits 0 on SIGTERM (rc $src)" "[ $src -eq 0 ]"

check "no sanitizer reports in any log" "no_sanitizer_reports $tmp/*.log"
if [ $fails -ne 0 ]; then
  echo "---- server log"; tail -20 "$tmp/server.log"
  for f in "$tmp"/w*.log "$tmp"/nobody.log; do echo "---- $f"; tail -5 "$f"; done
fi
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
