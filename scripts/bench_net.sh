#!/usr/bin/env bash
# The link-profile benchmark (scripts/bench.sh --only net): split training through emulated
# network links. siam-server runs in one network namespace ("srv"), the worker in another ("wrk"),
# joined by a veth pair; tbf on both ends of the veth sets the rate (the kernel has no netem),
# and siam-delayline in srv, between the veth and siam-server, adds the one-way delay:
#
#     wrk: siam-client -> veth (tbf: up) ==> srv: siam-delayline (delay) -> 127.0.0.1 siam-server
#     wrk: siam-client <- veth (tbf: down) <== srv: siam-delayline (delay) <- 127.0.0.1 siam-server
#
# Before a profile's runs its link is measured with siam-linkprobe through the same path: the
# relay's delay is set from round trips measured at delay 0 (and corrected once), then the round
# trip (1-byte request/answer, median) and the bulk rate each way (payload bytes, 1.5 s of the
# rate) are measured. A profile whose round trip or either rate is off its claim by more than 15 %
# is refused: its runs are skipped (--unverified runs them anyway, marked). The relay and the
# probe run at real-time priority (chrt -f 20) so that a busy machine does not stretch the link;
# siam-server and the worker run as usual.
#
# Profiles (--profiles, comma-separated): loopback (worker and server on 127.0.0.1 in srv, no
# shaping), 10g (10 Gbit/s, 0.1 ms round trip), 1g (1 Gbit/s, 0.5 ms), 100m (100 Mbit/s, 20 ms),
# 20m (20 Mbit/s, 60 ms). Workloads (--workloads), one fresh siam-server and one siam-client
# (one OpenBLAS thread) each, 4 short epochs, the figure being the median of epochs 2-4:
#   mlp857  --model mlp --batch-size 857 (pairs/s)      mlp128  --model mlp --batch-size 128
#   cnn128  --model cnn --batch-size 128                 set     --recipe mlp (the set loss head:
#           TrainSet, 160 images per set; images/s; siam-server --recipe mlp)
#   sync    --model mlp --batch-size 128 --sync-every 2, 2 epochs: the median SyncWeights round
#           (the worker's "waited" of each report: its parameters up, the mean, the model back)
# Epochs are short, a second or more where the link is fast and a few seconds where it is slow
# (STEPS below: e.g. mlp857 40 steps on loopback, 10g and 1g, 12 on 100m, 5 on 20m). Per run: the
# rate; payload bytes per pair (or image) up and down from the worker's report (serialized
# messages, siam_rpc.h "traffic"); link bytes per pair from the veth's counters (everything on
# the wire: TCP/IP and Ethernet headers, gRPC and HTTP/2 framing, the Status call, pings; on 100m
# and 20m only, see shape below); the server's CPU time per pair; and whether the server's counts
# (its shutdown lines) equal the worker's. The summary gives each rate with its ratio to the
# loopback figure of the same run of this script, and the load average when the profile started
# (the machine may be shared).
#
#   scripts/bench_net.sh [--profiles LIST] [--workloads LIST] [--worker-args 'ARGS']
#                        [--server-args 'ARGS'] [--unverified] [--keep DIR]
#   --worker-args / --server-args: extra flags for every siam-client / siam-server of the runs
#   (e.g. a wire encoding or batches in flight, to measure them on the same links).
#   --keep DIR: keep every log, report and metrics file there.
# Needs root (namespaces, tc, chrt) and iproute2 with the tbf qdisc; exits 77 otherwise.
# Environment: BUILD_DIR (default build/normal; built first), SIAM_DATA_DIR.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
SKIP=77
profiles="loopback,10g,1g,100m,20m"
workloads="mlp857,mlp128,cnn128,set,sync"
worker_args="" server_args="" unverified=0 keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profiles) profiles=${2:?--profiles needs a list}; shift 2 ;;
    --profiles=*) profiles=${1#*=}; shift ;;
    --workloads) workloads=${2:?--workloads needs a list}; shift 2 ;;
    --workloads=*) workloads=${1#*=}; shift ;;
    --worker-args) worker_args=${2?--worker-args needs a value}; shift 2 ;;
    --worker-args=*) worker_args=${1#*=}; shift ;;
    --server-args) server_args=${2?--server-args needs a value}; shift 2 ;;
    --server-args=*) server_args=${1#*=}; shift ;;
    --unverified) unverified=1; shift ;;
    --keep) keep=${2:?--keep needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,43p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_net.sh: unexpected argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
declare -A RATE=([loopback]=0 [10g]=10000 [1g]=1000 [100m]=100 [20m]=20)  # Mbit/s
declare -A RTT=([loopback]=0 [10g]=0.1 [1g]=0.5 [100m]=20 [20m]=60)      # ms
# steps (batches or sets) per epoch: epochs of about a second or more where the link is fast,
# a few seconds where it is slow
declare -A STEPS=(
  [fast.mlp857]=40 [fast.mlp128]=200 [fast.cnn128]=30 [fast.set]=150 [fast.sync]=40
  [100m.mlp857]=12 [100m.mlp128]=40 [100m.cnn128]=15 [100m.set]=40 [100m.sync]=12
  [20m.mlp857]=5 [20m.mlp128]=15 [20m.cnn128]=8 [20m.set]=15 [20m.sync]=6)
IFS=, read -ra plist <<<"$profiles"
IFS=, read -ra wlist <<<"$workloads"
for p in "${plist[@]}"; do
  [ -n "${RATE[$p]+x}" ] || { echo "bench_net.sh: unknown profile '$p' (loopback, 10g, 1g, 100m, 20m)" >&2; exit 2; }
done
for w in "${wlist[@]}"; do
  case "$w" in mlp857|mlp128|cnn128|set|sync) ;;
    *) echo "bench_net.sh: unknown workload '$w' (mlp857, mlp128, cnn128, set, sync)" >&2; exit 2 ;;
  esac
done
read -ra extra_worker <<<"$worker_args"
read -ra extra_server <<<"$server_args"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: the link benchmark needs root (network namespaces, tc, chrt): run it as root"
  exit $SKIP
fi
for tool in ip tc chrt; do
  command -v $tool >/dev/null 2>&1 || { echo "SKIP: the link benchmark needs '$tool' (iproute2, util-linux)"; exit $SKIP; }
done
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
[ -e "$data/train-images-idx3-ubyte.gz" ] || [ -e "$data/train-images-idx3-ubyte" ] ||
  { echo "bench_net.sh: no Fashion-MNIST in $data (set SIAM_DATA_DIR)" >&2; exit 1; }
build=${BUILD_DIR:-build/normal}
BUILD_DIR=$build scripts/build.sh >/dev/null || { echo "bench_net.sh: the build failed" >&2; exit 1; }
bin=$(cd "$build" && pwd)

tmp=$(mktemp -d)
tag="sbn$$"
ns_srv="$tag-srv" ns_wrk="$tag-wrk"
subnet=10.214.88
srv_ip=$subnet.1 wrk_ip=$subnet.2
pids=() made_ns=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for ns in "${made_ns[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  if [ -n "$keep" ]; then mkdir -p "$keep" && cp -r "$tmp"/. "$keep"/ && echo "files kept in $keep"; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the network: two namespaces, one veth ---------------------------------------------------
if ! ip netns add "$ns_srv" 2>"$tmp/ns.err"; then
  echo "SKIP: cannot create a network namespace ($(head -1 "$tmp/ns.err"))"; exit $SKIP
fi
made_ns+=("$ns_srv")
ip netns add "$ns_wrk" && made_ns+=("$ns_wrk")
ip -n "$ns_srv" link set lo up
ip -n "$ns_wrk" link set lo up
ip -n "$ns_srv" link add v-srv type veth peer name v-wrk netns "$ns_wrk"
ip -n "$ns_srv" addr add "$srv_ip/24" dev v-srv
ip -n "$ns_wrk" addr add "$wrk_ip/24" dev v-wrk
ip -n "$ns_srv" link set v-srv up
ip -n "$ns_wrk" link set v-wrk up
if ! ip netns exec "$ns_srv" tc qdisc add dev v-srv root tbf rate 100mbit burst 32kb latency 50ms 2>"$tmp/tc.err"; then
  echo "SKIP: tc cannot add a tbf qdisc ($(head -1 "$tmp/tc.err"))"; exit $SKIP
fi
ip netns exec "$ns_srv" tc qdisc del dev v-srv root

in_ns() { local ns=$1; shift; ip netns exec "$ns" env OPENBLAS_NUM_THREADS=1 "$@"; }
# start_bg NS NAME PATTERN CMD...: a background program whose stdout's line "... listening on
# HOST:PORT" gives bg_port; bg_pid is its pid
start_bg() {
  local ns=$1 name=$2; shift 2
  ip netns exec "$ns" env OPENBLAS_NUM_THREADS=1 "$@" >"$tmp/$name.out" 2>"$tmp/$name.log" &
  bg_pid=$!
  pids+=("$bg_pid")
  bg_port=""
  for _ in $(seq 200); do
    bg_port=$(sed -n 's/.* listening on .*:\([0-9]*\)$/\1/p' "$tmp/$name.out")
    [ -n "$bg_port" ] && break
    kill -0 "$bg_pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$bg_port" ] || { echo "bench_net.sh: $name did not start:" >&2; cat "$tmp/$name.log" >&2; exit 1; }
}
stop_bg() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
json_field() { sed -n "s/.*\"$2\": \([0-9.eE+-]*\).*/\1/p" "$1"; }
veth_bytes() { # tx and rx bytes of the worker's end
  echo "$(ip netns exec "$ns_wrk" cat /sys/class/net/v-wrk/statistics/tx_bytes)" \
       "$(ip netns exec "$ns_wrk" cat /sys/class/net/v-wrk/statistics/rx_bytes)"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }  # user + system
hz=$(getconf CLK_TCK)
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

# shape RATE_MBIT: tbf on both ends, with a burst of about 1 ms of the rate (at least two frames).
# Link bytes: the veth counts a GSO packet (up to 64 KiB of TCP segments) with one set of
# headers, and tbf cuts into frames only the packets larger than its burst; so the counters see
# every frame's headers, as a wire would, only where the burst is small: up to 100 Mbit/s (12.5
# KB). Turning GSO off (gso_max_size 1500) costs a 1 Gbit/s link a third of its rate here, so
# link bytes are reported for 100m and 20m only
shape() {
  local r=$1 burst
  burst=$(awk -v r="$r" 'BEGIN { b = r * 1e6 / 8 / 1000; if (b < 3100) b = 3100; printf "%d", b }')
  ip netns exec "$ns_srv" tc qdisc replace dev v-srv root tbf rate "${r}mbit" burst "$burst" latency 50ms
  ip netns exec "$ns_wrk" tc qdisc replace dev v-wrk root tbf rate "${r}mbit" burst "$burst" latency 50ms
}
unshape() {
  ip netns exec "$ns_srv" tc qdisc del dev v-srv root 2>/dev/null
  ip netns exec "$ns_wrk" tc qdisc del dev v-wrk root 2>/dev/null
}

# probe NAME TARGET PINGS BYTES: siam-linkprobe measure from wrk (JSON in $tmp/NAME.json)
probe() {
  ip netns exec "$ns_wrk" chrt -f 20 "$bin/siam-linkprobe" measure --server "$2" --pings "$3" \
    --bytes "$4" --json >"$tmp/$1.json" 2>"$tmp/$1.err" ||
    { echo "bench_net.sh: siam-linkprobe failed: $(cat "$tmp/$1.err")" >&2; return 1; }
}
# a relay in srv from the veth to 127.0.0.1:PORT with one-way delay D ms -> relay_pid, relay_port
start_relay() {
  start_bg "$ns_srv" relay chrt -f 20 "$bin/siam-delayline" --listen "$srv_ip:0" \
    --connect "127.0.0.1:$1" --delay-ms "$2" --log-level warn
  relay_pid=$bg_pid relay_port=$bg_port
}

# ---- a profile's link: calibrate the delay, then verify -------------------------------------
# sets delay (ms, one way), verdict (verified|REFUSED|UNVERIFIED), link_text
calibrate() {
  local p=$1 rate=${RATE[$1]} rtt=${RTT[$1]} pings bytes r0 r d best_d best_err err i f ok pts
  start_bg "$ns_srv" probe chrt -f 20 "$bin/siam-linkprobe" serve --listen 127.0.0.1:0
  local probe_pid=$bg_pid probe_port=$bg_port
  pings=$(awk -v t="$rtt" 'BEGIN { n = int(1000 / t); print (n > 1000 ? 1000 : (n < 20 ? 20 : n)) }')
  bytes=$(awk -v r="$rate" 'BEGIN { b = r * 1e6 / 8 * 1.5; printf "%d", b < 1e6 ? 1e6 : b }')
  # the delay: the round trip grows by about 2 x the delay plus the relay's wake-ups, and a busy
  # machine makes each measurement noisy: a straight line fitted (least squares) through every
  # (delay, round trip) measured so far gives the next delay, until a measurement comes within
  # 5 % or after 5 tries; the delay that came closest is kept
  d=0 best_d=0 best_err="" pts=""
  for i in 0 1 2 3 4 5; do
    start_relay "$probe_port" "$d"
    probe "$p.r$i" "$srv_ip:$relay_port" "$pings" 0 || return 1
    stop_bg "$relay_pid"
    r=$(json_field "$tmp/$p.r$i.json" rtt_ms)
    [ $i -eq 0 ] && r0=$r
    pts="$pts $d:$r"
    err=$(awk -v t="$rtt" -v r="$r" 'BEGIN { e = (r - t) / t; print (e < 0 ? -e : e) }')
    if [ $i -gt 0 ] && { [ -z "$best_err" ] || awk -v a="$err" -v b="$best_err" 'BEGIN { exit !(a < b) }'; }; then
      best_d=$d best_err=$err
    fi
    [ $i -gt 0 ] && awk -v e="$err" 'BEGIN { exit !(e <= 0.05) }' && break
    d=$(echo "$pts" | tr ' ' '\n' | grep : | awk -F: -v t="$rtt" '
      { n++; x += $1; y += $2; xx += $1 * $1; xy += $1 * $2 }
      END {
        b = 2; a = y / n - 2 * x / n                 # one point: slope 2
        if (n > 1 && n * xx - x * x > 0) { b = (n * xy - x * y) / (n * xx - x * x); a = (y - b * x) / n }
        if (b < 1.5) b = 1.5; if (b > 3) b = 3       # a noisy fit must not run away
        if (n > 1) a = y / n - b * x / n
        d = (t - a) / b; printf "%.4f", (d > 0 ? d : 0) }')
  done
  delay=$best_d
  # the link as the runs will see it; measured twice at most (a busy machine can spoil one)
  for i in 1 2; do
    start_relay "$probe_port" "$delay"
    probe "$p.link" "$srv_ip:$relay_port" "$pings" "$bytes" || return 1
    stop_bg "$relay_pid"
    f=$tmp/$p.link.json
    m_rtt=$(json_field "$f" rtt_ms) m_up=$(json_field "$f" up_mbit) m_down=$(json_field "$f" down_mbit)
    ok=0
    awk -v t="$rtt" -v r="$m_rtt" -v R="$rate" -v u="$m_up" -v w="$m_down" 'BEGIN {
       ok = r >= 0.85 * t && r <= 1.15 * t && u >= 0.85 * R && u <= 1.15 * R && w >= 0.85 * R && w <= 1.15 * R
       exit !ok }' && ok=1
    [ $ok -eq 1 ] && break
  done
  stop_bg "$probe_pid"
  if [ $ok -eq 1 ]; then
    verdict=verified
  elif [ $unverified -eq 1 ]; then
    verdict=UNVERIFIED
  else
    verdict=REFUSED
  fi
  link_text=$(printf '%s Mbit/s up, %s down, RTT %s ms (min %s, p90 %s)' "$m_up" "$m_down" "$m_rtt" \
    "$(json_field "$f" rtt_min_ms)" "$(json_field "$f" rtt_p90_ms)")
  echo "link $p: claims ${rate} Mbit/s, ${rtt} ms RTT; measured $link_text; relay delay $delay ms each way" \
       "(round trip at delay 0: $r0 ms); $verdict"
}

# ---- one run ---------------------------------------------------------------------------------
# run PROFILE WORKLOAD: appends "PROFILE WORKLOAD KEY VALUE" lines to $tmp/results.txt
run() {
  local p=$1 w=$2 name="$1.$2" sargs=() wargs=() epochs=4 batch=128 limit class=$1 steps
  case "$p" in loopback|10g|1g) class=fast ;; esac
  steps=${STEPS[$class.$w]}
  case "$w" in
    # no averaging in the rate runs (siam-client averages every 50 steps by default)
    mlp857) batch=857; wargs=(--model mlp --batch-size 857 --sync-every 0) ;;
    mlp128) wargs=(--model mlp --batch-size 128 --sync-every 0) ;;
    cnn128) wargs=(--model cnn --batch-size 128 --sync-every 0) ;;
    set) sargs=(--recipe mlp); wargs=(--recipe mlp --eval-every 0 --sync-every 0) ;;
    sync) epochs=2; wargs=(--model mlp --batch-size 128 --sync-every 2) ;;
  esac
  if [ "$w" = set ]; then
    limit=$(( steps * 160 * 11 / 10 ))  # images; P x K = 10 x 16 per set
  else
    limit=$(( (steps * batch * 115 / 100 + 1) / 2 + 100 ))  # about 2 pairs per image
  fi
  start_bg "$ns_srv" "$name.server" "$bin/siam-server" --listen 127.0.0.1:0 --grace 2 \
    "${sargs[@]}" "${extra_server[@]}"
  local server_pid=$bg_pid target cpu0 cpu1
  cpu0=$(cpu_ticks "$server_pid")
  if [ "$p" = loopback ]; then
    target=127.0.0.1:$bg_port
  else
    start_relay "$bg_port" "$delay"
    target=$srv_ip:$relay_port
  fi
  local before after ns=$ns_wrk
  [ "$p" = loopback ] && ns=$ns_srv
  before=$(veth_bytes)
  in_ns "$ns" "$bin/siam-client" --server "$target" --data "$data" --seed 42 --threads 1 \
    --epochs "$epochs" --train-limit "$limit" --test-limit 200 --eval-every 0 --timeout 300 \
    --worker-id "bench-$w" "${wargs[@]}" "${extra_worker[@]}" --metrics "$tmp/$name.csv" --json \
    >"$tmp/$name.json" 2>"$tmp/$name.log"
  local rc=$?
  after=$(veth_bytes)
  cpu1=$(cpu_ticks "$server_pid")
  [ "$p" = loopback ] || stop_bg "$relay_pid"
  stop_bg "$server_pid"
  if [ $rc -ne 0 ]; then
    echo "run $name: siam-client exited $rc: $(tail -1 "$tmp/$name.log")"
    return
  fi
  local unit=pair rate epochs_rates pairs up down lup ldown agree
  [ "$w" = set ] && unit=image
  # per-epoch rates of epochs 2.. (the first opens the stream and warms up), their median
  epochs_rates=$(awk -F, 'NR > 1 && $1 == "epoch" && $2 >= 2 { printf "%.0f ", $8 }' "$tmp/$name.csv")
  rate=$(echo "$epochs_rates" | median)
  pairs=$(( $(json_field "$tmp/$name.json" train_pairs) * epochs ))
  [ "$w" = set ] && pairs=$(sed -n 's/.*set head: images \([0-9]*\)\.\.\([0-9]*\) of.*/\2 \1/p' "$tmp/$name.log" |
    awk -v e="$epochs" '{ print ($1 - $2) * e }')
  up=$(json_field "$tmp/$name.json" "bytes_per_${unit}_up")
  down=$(json_field "$tmp/$name.json" "bytes_per_${unit}_down")
  read -r tx0 rx0 <<<"$before"
  read -r tx1 rx1 <<<"$after"
  # link bytes: the veth's counters over the trained pairs (or images); none on loopback
  lup="" ldown=""
  if [ "$p" != loopback ] && [ "${RATE[$p]}" -le 100 ] && [ "$w" != sync ] && [ "${pairs:-0}" -gt 0 ]; then
    lup=$(calc %.1f "($tx1 - $tx0) / $pairs")
    ldown=$(calc %.1f "($rx1 - $rx0) / $pairs")
  fi
  # the server's counts (its shutdown lines) against the worker's, for the training RPC
  local rpc=Train
  [ "$w" = set ] && rpc=TrainSet
  [ "$w" = sync ] && rpc=SyncWeights
  local ws wr ss sr
  ws=$(sed -n "s/.*traffic \/siam.v1.Siamese\/$rpc: .* bytes_sent=\([0-9]*\) .*/\1/p" "$tmp/$name.log")
  wr=$(sed -n "s/.*traffic \/siam.v1.Siamese\/$rpc: .* bytes_received=\([0-9]*\)$/\1/p" "$tmp/$name.log")
  sr=$(sed -n "s/.*traffic \/siam.v1.Siamese\/$rpc: .* bytes_received=\([0-9]*\) .*/\1/p" "$tmp/$name.server.log")
  ss=$(sed -n "s/.*traffic \/siam.v1.Siamese\/$rpc: .* bytes_sent=\([0-9]*\)$/\1/p" "$tmp/$name.server.log")
  agree=no
  [ -n "$ws" ] && [ "$ws" = "$sr" ] && [ "$wr" = "$ss" ] && agree=yes
  # the server's CPU time (all its threads) per pair or image trained: 1e6 / it = what one server
  # core carries (its clock ticks are 1/CLK_TCK s: only runs long enough say much)
  local cpu_us=""
  [ "$w" != sync ] && [ "${pairs:-0}" -gt 0 ] &&
    cpu_us=$(calc %.2f "($cpu1 - $cpu0) / $hz * 1e6 / $pairs")
  local sync_ms=""
  if [ "$w" = sync ]; then
    sync_ms=$(sed -n 's/.*round [0-9]* adopted (.*waited \([0-9.]*\) s).*/\1/p' "$tmp/$name.log" |
      awk '{ printf "%.1f ", $1 * 1000 }' | median)
  fi
  {
    [ "$w" = sync ] || echo "$p $w rate $rate"
    echo "$p $w up $up"
    echo "$p $w down $down"
    [ -n "$lup" ] && echo "$p $w link_up $lup" && echo "$p $w link_down $ldown"
    [ -n "$sync_ms" ] && echo "$p $w sync_ms $sync_ms"
    [ -n "$cpu_us" ] && echo "$p $w cpu_us $cpu_us"
    echo "$p $w agree $agree"
  } >>"$tmp/results.txt"
  if [ "$w" = sync ]; then
    printf 'run %-14s SyncWeights round median %s ms (%d rounds of %s parameters); worker and server counts agree: %s\n' \
      "$name" "$sync_ms" "$(grep -c 'round [0-9]* adopted' "$tmp/$name.log")" \
      "$(sed -n 's/.*model mlp: \([0-9]*\) parameters.*/\1/p' "$tmp/$name.log")" "$agree"
  else
    printf 'run %-14s %8s %s/s (epochs 2-%d: %s) payload %s/%s B/%s up/down%s; server CPU %s us/%s; worker and server counts agree: %s\n' \
      "$name" "$rate" "$unit" "$epochs" "${epochs_rates% }" "$up" "$down" "$unit" \
      "${lup:+, link $lup/$ldown B/$unit}" "$cpu_us" "$unit" "$agree"
  fi
}

# ---- the profiles ----------------------------------------------------------------------------
echo "== $(date -u +%Y-%m-%dT%H:%MZ) net: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), kernel $(uname -r)"
echo "   command: scripts/bench_net.sh --profiles $profiles --workloads $workloads${worker_args:+ --worker-args '$worker_args'}${server_args:+ --server-args '$server_args'}$([ $unverified -eq 1 ] && echo ' --unverified')"
: >"$tmp/results.txt"
declare -A LINK VERDICT LOAD
for p in "${plist[@]}"; do
  LOAD[$p]=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "== profile $p (load average ${LOAD[$p]})"
  if [ "$p" = loopback ]; then
    unshape
    start_bg "$ns_srv" probe chrt -f 20 "$bin/siam-linkprobe" serve --listen 127.0.0.1:0
    ip netns exec "$ns_srv" chrt -f 20 "$bin/siam-linkprobe" measure --server "127.0.0.1:$bg_port" \
      --pings 300 --bytes 1000000000 --json >"$tmp/loopback.link.json" 2>"$tmp/loopback.link.err"
    stop_bg "$bg_pid"
    f=$tmp/loopback.link.json
    LINK[$p]=$(printf '%s Mbit/s up, %s down, RTT %s ms' "$(json_field "$f" up_mbit)" \
      "$(json_field "$f" down_mbit)" "$(json_field "$f" rtt_ms)")
    VERDICT[$p]=unshaped
    echo "link loopback: 127.0.0.1 in one namespace, unshaped: ${LINK[$p]}"
  else
    shape "${RATE[$p]}"
    if ! calibrate "$p"; then VERDICT[$p]=REFUSED; LINK[$p]="the probe failed"; continue; fi
    VERDICT[$p]=$verdict LINK[$p]=$link_text
    if [ "$verdict" = REFUSED ]; then
      echo "profile $p REFUSED: its link is not what it claims (within 15 %); no runs (--unverified runs them)"
      continue
    fi
  fi
  for w in "${wlist[@]}"; do run "$p" "$w"; done
done
unshape

# ---- summary ---------------------------------------------------------------------------------
echo "== net summary (median of epochs 2-4 per run; x = ratio to loopback in this run)"
{
  for p in "${plist[@]}"; do echo "profile $p ${VERDICT[$p]} ${LOAD[$p]// /,} ${LINK[$p]// /_}"; done
  cat "$tmp/results.txt"
} | awk -v W="${workloads}" '
  $1 == "profile" { order[++np] = $2; verdict[$2] = $3; load[$2] = $4; link[$2] = $5; gsub(/_/, " ", link[$2]); next }
  { v[$1 " " $2 " " $3] = $4 }
  function cell(p, w, k,   x, b) {
    x = v[p " " w " " k]; if (x == "") return "–"
    b = v["loopback " w " " k]
    if (k == "sync_ms") return sprintf("%.1f", x)
    if (p == "loopback" || b == "" || b == 0) return sprintf("%.0f", x)
    return sprintf("%.0f (%.2f×)", x, x / b)
  }
  END {
    nw = split(W, ws, ",")
    hdr = "| profile | link measured | load avg |"; sep = "| --- | --- | --- |"
    for (i = 1; i <= nw; i++) {
      w = ws[i]
      hdr = hdr (w == "set" ? " set head images/s |" : w == "sync" ? " SyncWeights round ms |" : " " w " pairs/s |")
      sep = sep " --- |"
    }
    hdr = hdr " link bytes/pair up/down (mlp857; payload 1025/1028) |"; sep = sep " --- |"
    print hdr; print sep
    for (j = 1; j <= np; j++) {
      p = order[j]; line = "| " p (verdict[p] == "verified" || verdict[p] == "unshaped" ? "" : " **" verdict[p] "**") " | " link[p] " | " load[p] " |"
      for (i = 1; i <= nw; i++) { w = ws[i]; line = line " " cell(p, w, w == "sync" ? "sync_ms" : "rate") " |" }
      lu = v[p " mlp857 link_up"]; ld = v[p " mlp857 link_down"]
      line = line " " (lu == "" ? "–" : sprintf("%.0f / %.0f", lu, ld)) " |"
      print line
    }
    print ""
    print "| workload | payload bytes per pair (image) up | down | server CPU µs per pair (image), loopback | worker = server counts |"
    print "| --- | --- | --- | --- | --- |"
    for (i = 1; i <= nw; i++) {
      w = ws[i]; u = ""; d = ""; ag = "yes"; seen = 0
      for (j = 1; j <= np; j++) { p = order[j]
        if (v[p " " w " up"] != "") { if (u == "") { u = v[p " " w " up"]; d = v[p " " w " down"] } seen = 1 }
        if (v[p " " w " agree"] == "no") ag = "NO" }
      c = v["loopback " w " cpu_us"]
      if (seen && w != "sync") printf "| %s | %s | %s | %s | %s |\n", w, u, d, c == "" ? "–" : c, ag
    }
  }'
