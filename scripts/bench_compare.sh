#!/usr/bin/env bash
# Old build against new: the same benchmark commands from two build directories, alternated
# round by round (which build goes first flips every round), so that a shared, noisy machine
# slows both alike. Per figure it prints the median of the old runs, of the new runs, and of the
# per-round ratios new/old (each taken from the two runs of the same round).
#   scripts/bench_compare.sh OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS]      (default 5 rounds)
# Figures, each from both builds in every round:
#   train.*       local training pairs/s, no network: each build's
#                 siam-bench --suite local --only train --threads THREADS --reps 3
#                 (mlp batch 128 and 857, cnn batch 128; Fashion-MNIST from the default --data);
#   grpc.mlp.b857 split training through gRPC on loopback: each build's siam-server and one
#                 siam-client --model mlp --batch-size 857 --epochs 1 --seed 42 --threads THREADS
#                 --json (as scripts/bench.sh --only rpc), its train_pairs_per_s;
#   head.*        the loss head alone: each build's siam-bench --suite head --json (pairs/s);
#   sim.p1, sim.p1000   Similarity with embeddings, 1 and 1,000 pairs per request, 4 callers for
#                 SIM_SECONDS each: NEW_BUILD_DIR's siam-bench against the old and the new
#                 siam-server (the wire did not change): requests/s, p50 and p99 latency;
#   img.MODEL.p1, img.MODEL.p100   image Similarity, 1 and 100 pairs of random 28x28 images:
#                 NEW_BUILD_DIR's siam-bench --suite similarity --images against the old and the
#                 new siam-server --model MODEL (the inference path of each build, end to end).
# Latencies (us) are better when lower, their ratio below 1; every other figure when higher.
# Environment: THREADS (OpenBLAS threads of training and siam-client, default 1), SIM_SECONDS
# (default 3), IMAGE_MODELS (default "mlp cnn").
set -euo pipefail
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage >&2; exit 2; fi
old=$(cd "$1" && pwd) new=$(cd "$2" && pwd)
rounds=${3:-5}
case "$rounds" in ''|*[!0-9]*|0) echo "bench_compare.sh: ROUNDS must be a positive integer, not '$rounds'" >&2; exit 2 ;; esac
for b in "$old" "$new"; do
  for p in siam-server siam-client siam-bench; do
    [ -x "$b/$p" ] || { echo "bench_compare.sh: $b/$p is missing (build it first)" >&2; exit 2; }
  done
done
threads=${THREADS:-1}
sim_seconds=${SIM_SECONDS:-3}
image_models=${IMAGE_MODELS:-mlp cnn}
bench=$new/siam-bench # the load generator of the Similarity figures, the same for both servers
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# what a build was built from: the commit of the source tree its CMakeCache names
build_rev() {
  local src
  src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$1/CMakeCache.txt" 2>/dev/null || true)
  git -C "${src:-$1}" describe --always --dirty 2>/dev/null || echo unknown
}
json_field() { # json_field FILE KEY -> number
  sed -n "s/.*\"$2\": \([0-9.eE+-]*\).*/\1/p" "$1"
}
record() { # record SIDE FIGURE UNIT VALUE
  echo "$r $1 $2 $3 $4" >>"$tmp/results.txt"
  printf 'round %d: %-3s %-24s %12s %s\n' "$r" "$1" "$2" "$4" "$3"
}
bin_of() { if [ "$1" = old ]; then echo "$old"; else echo "$new"; fi; }
# the two sides in this round's order: old first in odd rounds, new first in even ones
sides() { if [ $((r % 2)) -eq 1 ]; then echo old new; else echo new old; fi; }

start_server() { # start_server SIDE NAME [ARGS...]: siam-server on a free port -> port_NAME, pid_NAME
  local side=$1 name=$2 port="" pid
  shift 2
  "$(bin_of "$side")/siam-server" --listen 127.0.0.1:0 "$@" >"$tmp/$name.out" 2>"$tmp/$name.log" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/$name.out" 2>/dev/null || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "bench_compare.sh: $side siam-server did not start:" >&2; cat "$tmp/$name.log" >&2; exit 1; }
  printf -v "port_$name" '%s' "$port"
  printf -v "pid_$name" '%s' "$pid"
}
stop_server() { # stop_server NAME
  local v="pid_$1" p
  kill -TERM "${!v}"
  wait "${!v}" || true
  for p in "${!pids[@]}"; do [ "${pids[$p]}" = "${!v}" ] && unset 'pids[p]'; done
  pids=("${pids[@]}")
}

local_train() { # local_train SIDE
  OPENBLAS_NUM_THREADS=$threads "$(bin_of "$1")/siam-bench" --suite local --only train \
    --threads "$threads" --reps 3 >"$tmp/train.txt"
  local kind name value unit
  while read -r kind name value unit; do
    [ "$kind" = train ] && record "$1" "train.$name" "$unit" "$value"
  done <"$tmp/train.txt"
}

grpc_train() { # grpc_train SIDE
  local b
  b=$(bin_of "$1")
  start_server "$1" grpc
  OPENBLAS_NUM_THREADS=$threads "$b/siam-client" --server "127.0.0.1:$port_grpc" --model mlp \
    --batch-size 857 --epochs 1 --seed 42 --threads "$threads" --json >"$tmp/grpc.json" 2>"$tmp/grpc.log"
  stop_server grpc
  record "$1" grpc.mlp.b857 pairs/s "$(json_field "$tmp/grpc.json" train_pairs_per_s)"
}

head_bench() { # head_bench SIDE
  "$(bin_of "$1")/siam-bench" --suite head --json >"$tmp/head.txt"
  record "$1" head.loss.b857 pairs/s "$(json_field "$tmp/head.txt" loss_pairs_per_s)"
  record "$1" head.service_train.b857 pairs/s "$(json_field "$tmp/head.txt" service_train_pairs_per_s)"
}

similarity() { # similarity SIDE FIGURE SERVER_NAME PAIRS [--images]
  local v="port_$3"
  "$bench" --suite similarity --server "127.0.0.1:${!v}" --callers 4 --pairs "$4" \
    --seconds "$sim_seconds" --json "${@:5}" >"$tmp/sim.txt"
  record "$1" "$2.rps" requests/s "$(json_field "$tmp/sim.txt" requests_per_s)"
  record "$1" "$2.p50" us "$(json_field "$tmp/sim.txt" p50_us)"
  record "$1" "$2.p99" us "$(json_field "$tmp/sim.txt" p99_us)"
}

echo "== $(date -u +%Y-%m-%dT%H:%MZ) bench_compare: $rounds round(s), $(nproc) cores," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $threads OpenBLAS thread(s), Similarity windows of ${sim_seconds} s"
echo "old: $old ($(build_rev "$old"))"
echo "new: $new ($(build_rev "$new"))"
: >"$tmp/results.txt"
for r in $(seq "$rounds"); do
  for s in $(sides); do local_train "$s"; done
  for s in $(sides); do grpc_train "$s"; done
  for s in $(sides); do head_bench "$s"; done
  for m in $image_models; do
    for s in old new; do start_server "$s" "$s$m" --model "$m" --seed 42; done
    if [ "$m" = mlp ]; then # embeddings: the model does not matter, any server does
      for p in 1 1000; do for s in $(sides); do similarity "$s" "sim.p$p" "$s$m" "$p"; done; done
    fi
    for p in 1 100; do for s in $(sides); do similarity "$s" "img.$m.p$p" "$s$m" "$p" --images; done; done
    for s in old new; do stop_server "$s$m"; done
  done
done

echo "== old vs new: medians of $rounds round(s); ratio = median of the per-round new/old" \
     "(latency in us: lower is better, so a ratio below 1 is a gain there)"
awk '
  function median(s,   n, i, j, t, v) {
    n = split(s, v, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  { key = $3; if (!(key in unit)) { order[++n] = key; unit[key] = $4 }
    vals[$2, key] = vals[$2, key] " " $5; at[$1, $2, key] = $5; last = $1 > last ? $1 : last }
  END {
    printf "%-26s %-10s %14s %14s %10s\n", "figure", "unit", "old median", "new median", "new/old"
    for (i = 1; i <= n; i++) { k = order[i]; rs = ""
      for (q = 1; q <= last; q++) if (((q, "old", k) in at) && ((q, "new", k) in at) && at[q, "old", k] > 0)
        rs = rs " " at[q, "new", k] / at[q, "old", k]
      printf "%-26s %-10s %14.1f %14.1f %10.3f\n", k, unit[k], median(vals["old", k]), median(vals["new", k]), median(rs) }
  }' "$tmp/results.txt"
