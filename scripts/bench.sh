#!/usr/bin/env bash
# The benchmark, in two parts, each alternating the runs it compares over ROUNDS rounds so that a
# noisy machine slows both alike; figures are medians over the rounds.
#   local: sgemm GFLOP/s at the models' shapes, and training pairs/s of siam against PyTorch
#          (Debian's python3-torch) with the same models, batches and thread count;
#   rpc:   split training through gRPC on loopback (siam-client + siam-server) against the same
#          model without the network (siam-train), mlp at batch 857 and 128; the server's loss
#          head alone (siam-bench --suite head); Similarity requests/s and p50/p99 latency for
#          1-pair and 1,000-pair requests from 4 concurrent callers; peak RSS of server and client.
#   avg:   weight averaging: total training pairs/s of 1, 2 and 4 workers (siam-client, one
#          OpenBLAS thread each, mlp batch 128, one epoch over all pairs) against one siam-server,
#          without averaging (--sync-every 0) and averaging every 50 steps; the cost of averaging;
#          how long rounds wait for the slowest worker and how long the averaging itself takes.
#   load:  sustained mixed load (issue 6): per round a fresh siam-server (--threads 2) and
#          siam-bench --suite load against it: 32 Train streams (batch 128 x dim 128) and 4
#          Similarity callers (1/10/100/1000 pairs) for a 5 s warm-up + LOAD_SECONDS; calls,
#          failures, latency p50/p90/p99/max per RPC, and the server's RSS (first/last/max/growth
#          after the warm-up, and whether it is flat); medians and the spread over the rounds.
#   set:   the set loss head (TrainSet, issue 13): siam-bench --suite set-head once per round (one
#          thread; THREADS does not apply): siam_set_loss alone for every loss and distance at
#          n = 256 (P x K = 32 x 8), dim 64 and 128, semi-hard at n = 1024 and 4096, the whole
#          TrainSet request path and TrainSet over loopback (n = 256, dim 64); calls/s, us per
#          call (p50, p90), images/s, terms/s (pairs, triplets or anchors); medians over rounds.
#   search: identification (issue 14): per round a fresh siam-server (--threads 2) with a model
#          (SEARCH_CKPT if set, else a fresh SEARCH_MODEL, default cnn2, the cnn recipe's model:
#          timings do not depend on the weights) and the 60,000 training images as its gallery,
#          and siam-bench --suite search against it: Search of 1 query (k = 5) p50/p99 and
#          queries/s from 1 and 4 callers, embedding Similarity of 1 pair p50 from 1 and 4
#          callers, image Similarity requests/s from 1 and 4 callers, the 4-vs-1 ratios, the
#          gallery's re-embedding after an averaging round (and the Search latency meanwhile);
#          medians over rounds.
#   net:   split training over emulated links (issue 15): scripts/bench_net.sh, which says how
#          (network namespaces, tbf, siam-delayline; needs root). Not part of "all": run it with
#          --only net; --profiles, --workloads, --worker-args, --server-args and --unverified are
#          passed to it (THREADS and ROUNDS do not apply).
#   scripts/bench.sh [THREADS] [ROUNDS] [--only local|rpc|avg|load|set|search|net]   (defaults: all cores, 3 rounds, all)
# Environment: BUILD_DIR (default build/normal) is built with scripts/build.sh and benchmarked;
# SIM_SECONDS (default 10) is the length of each Similarity load window; LOAD_SECONDS (default
# 60) the length of each load round's timed window; SEARCH_SECONDS (default 5) the length of each
# of the search suite's six windows; SEARCH_MODEL / SEARCH_CKPT its server's model; DATA_DIR the
# Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads="" rounds="" only=all net_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only=${2:?--only needs local, rpc, avg, load, set, search or net}; shift 2 ;;
    --only=*) only=${1#--only=}; shift ;;
    --profiles|--workloads|--worker-args|--server-args) net_args+=("$1" "${2?$1 needs a value}"); shift 2 ;;
    --profiles=*|--workloads=*|--worker-args=*|--server-args=*|--unverified) net_args+=("$1"); shift ;;
    -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) if [ -z "$threads" ]; then threads=$1; elif [ -z "$rounds" ]; then rounds=$1
       else echo "bench.sh: unexpected argument '$1' (see --help)" >&2; exit 2; fi; shift ;;
  esac
done
case "$only" in all|local|rpc|avg|load|set|search|net) ;; *) echo "bench.sh: --only local|rpc|avg|load|set|search|net, not '$only'" >&2; exit 2 ;; esac
if [ ${#net_args[@]} -gt 0 ] && [ "$only" != net ]; then
  echo "bench.sh: ${net_args[0]} is for --only net" >&2; exit 2
fi
if [ "$only" = net ]; then
  scripts/install-deps.sh
  exec scripts/bench_net.sh "${net_args[@]}"
fi
threads=${threads:-$(nproc)}
rounds=${rounds:-3}
build=${BUILD_DIR:-build/normal}
sim_seconds=${SIM_SECONDS:-10}
load_seconds=${LOAD_SECONDS:-60}
search_seconds=${SEARCH_SECONDS:-5}
data_dir=${DATA_DIR:-/usr/share/datasets/fashion-mnist}
if [ "$only" = rpc ] || [ "$only" = avg ] || [ "$only" = load ] || [ "$only" = set ] || [ "$only" = search ]; then scripts/install-deps.sh; else scripts/install-deps.sh --bench; fi
BUILD_DIR=$build scripts/build.sh
bin=$(cd "$build" && pwd)
tmp=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# median of the values gathered per key in vals[key] (space-separated), shared by the summaries
awk_median='
  function median(key,   n, i, j, t, v) {
    n = split(vals[key], v, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }'
json_field() { # json_field FILE KEY -> number
  sed -n "s/.*\"$2\": \([0-9.eE+-]*\).*/\1/p" "$1"
}
log_field() { # log_field FILE KEY -> the number after KEY= on the last line that has it
  sed -n "s/.*$2=\([0-9.]*\).*/\1/p" "$1" | tail -n 1
}

local_part() {
  echo "== $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $threads thread(s), $rounds rounds," \
       "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
  "$bin/siam-bench" --only sgemm --threads "$threads" | tee "$tmp/sgemm.txt"
  for r in $(seq "$rounds"); do
    "$bin/siam-bench" --only train --threads "$threads" --reps 3 | sed "s/^/siam $r /" | tee -a "$tmp/train.txt"
    OMP_NUM_THREADS=$threads /usr/bin/python3 scripts/bench_torch.py --threads "$threads" --reps 3 \
      | sed "s/^/torch $r /" | tee -a "$tmp/train.txt"
  done

  # medians over rounds, ratios, and the mlp's rate against what sgemm allows
  # (1.19 MFLOP per pair, see docs/BENCHMARKS.md)
  echo "== summary ($threads thread(s), medians of $rounds rounds)"
  awk -v S="$tmp/sgemm.txt" "$awk_median"'
    BEGIN { while ((getline l < S) > 0) { split(l, f, " "); if (f[1] == "sgemm") g[f[2]] = f[3] } }
    $3 == "train" { vals[$1 " " $4] = vals[$1 " " $4] " " $5; if (!seen[$4]++) order[++n] = $4 }
    END {
      printf "%-10s %14s %14s %8s\n", "run", "siam pairs/s", "torch pairs/s", "ratio"
      for (i = 1; i <= n; i++) { k = order[i]; s = median("siam " k); t = median("torch " k)
        printf "%-10s %14.0f %14.0f %8.2f\n", k, s, t, t ? s / t : 0 }
      gf = (g["mlp128.dense1.fwd"] + g["mlp128.dense1.dW"]) / 2
      if (gf > 0) printf "mlp.b128: %.0f%% of the sgemm bound (%.1f GFLOP/s at its shapes -> %.0f pairs/s)\n",
        100 * median("siam mlp.b128") / (gf * 1e9 / 1.19e6), gf, gf * 1e9 / 1.19e6
    }' "$tmp/train.txt"
}

start_server() { # one siam-server on a free loopback port (default --threads 2) -> server_pid, port
  "$bin/siam-server" --listen 127.0.0.1:0 "$@" >"$tmp/server.out" 2>"$tmp/server.log" &
  server_pid=$!
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/server.out")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "bench.sh: siam-server did not start:" >&2; cat "$tmp/server.log" >&2; exit 1; }
}

stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid"
  server_pid=""
}

# one training run; appends "KEY VALUE" lines to $tmp/rpc.txt
train_run() { # train_run local|grpc BATCH
  local kind=$1 batch=$2 out=$tmp/$1.json log=$tmp/$1.log
  local args=(--model mlp --batch-size "$batch" --epochs 1 --seed 42 --threads "$threads" --json)
  if [ "$kind" = local ]; then
    OPENBLAS_NUM_THREADS=$threads "$bin/siam-train" "${args[@]}" >"$out" 2>"$log"
  else
    OPENBLAS_NUM_THREADS=$threads "$bin/siam-client" --server "127.0.0.1:$port" "${args[@]}" >"$out" 2>"$log"
    echo "rpc_share.b$batch $(awk -v r="$(log_field "$log" rpc_seconds)" -v t="$(log_field "$log" train_seconds)" \
      'BEGIN { print (t > 0 ? r / t : 0) }')" >>"$tmp/rpc.txt"
    echo "rss.client $(log_field "$log" peak_rss_mb)" >>"$tmp/rpc.txt"
  fi
  local rate
  rate=$(json_field "$out" train_pairs_per_s)
  echo "$kind.b$batch $rate" >>"$tmp/rpc.txt"
  echo "round $r: $kind mlp batch $batch: $rate pairs/s"
}

# local and gRPC back to back, in alternating order, and the gRPC cost of this round
train_pair() { # train_pair BATCH
  if [ $((r % 2)) -eq 1 ]; then train_run local "$1"; train_run grpc "$1"
  else train_run grpc "$1"; train_run local "$1"; fi
  echo "cost.b$1 $(awk -v g="$(json_field "$tmp/grpc.json" train_pairs_per_s)" \
    -v l="$(json_field "$tmp/local.json" train_pairs_per_s)" 'BEGIN { print 1 - g / l }')" >>"$tmp/rpc.txt"
}

similarity_run() { # similarity_run PAIRS
  "$bin/siam-bench" --suite similarity --server "127.0.0.1:$port" --callers 4 --pairs "$1" \
    --seconds "$sim_seconds" --json >"$tmp/sim.txt"
  head -n 1 "$tmp/sim.txt" | sed "s/^/round $r: /"
  for k in requests_per_s pairs_per_s p50_us p99_us; do
    echo "sim.p$1.$k $(json_field "$tmp/sim.txt" "$k")" >>"$tmp/rpc.txt"
  done
}

rpc_part() {
  echo "== $(date -u +%Y-%m-%dT%H:%MZ) rpc: $(nproc) cores, $threads OpenBLAS thread(s), $rounds rounds"
  start_server
  echo "siam-server on 127.0.0.1:$port"
  : >"$tmp/rpc.txt"
  for r in $(seq "$rounds"); do
    # which of local and gRPC goes first alternates, so neither always gets a warmer or quieter machine
    train_pair 857
    train_pair 128
    "$bin/siam-bench" --suite head --json | tee "$tmp/head.txt" | grep -v '^{' | sed "s/^/round $r: /"
    for k in loss_pairs_per_s service_train_pairs_per_s; do
      echo "head.$k $(json_field "$tmp/head.txt" "$k")" >>"$tmp/rpc.txt"
    done
    similarity_run 1
    similarity_run 1000
  done
  stop_server
  echo "rss.server $(log_field "$tmp/server.log" peak_rss_mb)" >>"$tmp/rpc.txt"

  echo "== rpc summary ($threads OpenBLAS thread(s), medians of $rounds rounds)"
  awk "$awk_median"'
    { vals[$1] = vals[$1] " " $2; if ($2 + 0 > max[$1]) max[$1] = $2 + 0 }
    function mark(ok) { return ok ? "met" : "MISSED" }
    END {
      # gRPC cost = 1 - gRPC/local: of the medians, and the median of the per-round ratios
      printf "%-13s %14s %14s %10s %10s %10s\n", "mlp, 1 epoch", "local pairs/s", "gRPC pairs/s", "gRPC cost", "per round", "rpc share"
      split("857 128", bs, " ")
      for (i = 1; i <= 2; i++) { b = bs[i]; l = median("local.b" b); g = median("grpc.b" b); c = median("cost.b" b)
        printf "%-13s %14.0f %14.0f %9.1f%% %9.1f%% %9.0f%%%s\n", "batch " b, l, g, 100 * (1 - g / l), 100 * c,
          100 * median("rpc_share.b" b), b == 857 ? "   target <= 10%: " mark(c <= 0.10) : "" }
      h = median("head.loss_pairs_per_s"); s = median("head.service_train_pairs_per_s")
      printf "loss head, one thread, batch 857, dim 128 (target >= 2,000,000 pairs/s):\n"
      printf "  loss + gradients         %9.0f pairs/s  %s\n", h, mark(h >= 2e6)
      printf "  whole Train request path %9.0f pairs/s  %s (decode, validate, compute, encode)\n", s, mark(s >= 2e6)
      split("1 1000", ps, " ")
      for (i = 1; i <= 2; i++) { p = "sim.p" ps[i] "."
        printf "Similarity, 4 callers, %4d pair(s)/request: %8.0f requests/s, %9.0f pairs/s, p50 %6.0f us, p99 %6.0f us\n",
          ps[i], median(p "requests_per_s"), median(p "pairs_per_s"), median(p "p50_us"), median(p "p99_us") }
      printf "peak RSS: siam-server %.1f MiB (whole run), siam-client %.1f MiB (largest run)\n", max["rss.server"], max["rss.client"]
    }' "$tmp/rpc.txt"
}

# N workers on one server, each on its 1/N of the pairs; appends "KEY VALUE" lines to avg.txt
avg_run() { # avg_run WORKERS SYNC_EVERY
  local n=$1 k=$2 i total=0
  start_server --min-workers "$n"
  for i in $(seq 0 $((n - 1))); do
    OPENBLAS_NUM_THREADS=1 "$bin/siam-client" --server "127.0.0.1:$port" --model mlp --batch-size 128 \
      --epochs 1 --seed 42 --threads 1 --workers "$n" --worker-index "$i" --sync-every "$k" --json \
      >"$tmp/avg$i.json" 2>"$tmp/avg$i.log" &
    wp[$i]=$!
  done
  for i in $(seq 0 $((n - 1))); do wait "${wp[$i]}"; done
  stop_server
  # total rate: the pairs of all workers over the longest worker's training time
  total=$(for i in $(seq 0 $((n - 1))); do
      echo "$(json_field "$tmp/avg$i.json" train_pairs) $(json_field "$tmp/avg$i.json" train_pairs_per_s)"
    done | awk '{ p += $1; t = $1 / $2; if (t > m) m = t } END { printf "%.0f", p / m }')
  echo "rate.w$n.s$k $total" >>"$tmp/avg.txt"
  # the workers' own measure: time inside SyncWeights (joins excluded: logged apart) over their
  # training time (first batch to last answer)
  if [ "$k" -gt 0 ]; then
    for i in $(seq 0 $((n - 1))); do
      echo "$(log_field "$tmp/avg$i.log" sync_seconds) $(log_field "$tmp/avg$i.log" train_seconds)"
    done | awk -v n="$n" '{ s += $1; t += $2 } END { print "share.w" n " " (t > 0 ? s / t : 0) }' >>"$tmp/avg.txt"
  fi
  echo "round $r: $n worker(s), --sync-every $k: $total pairs/s"
  if [ "$k" -gt 0 ]; then
    sed -n 's/.*closed: .* waited \([0-9.]*\) s.*averaged in \([0-9.]*\) ms.*/\1 \2/p' "$tmp/server.log" |
      awk -v n="$n" '{ print "wait.w" n " " $1 * 1000; print "avgms.w" n " " $2 }' >>"$tmp/avg.txt"
    echo "rounds.w$n $(grep -c 'closed: ' "$tmp/server.log")" >>"$tmp/avg.txt"
  fi
}

avg_part() {
  echo "== $(date -u +%Y-%m-%dT%H:%MZ) avg: $(nproc) cores, workers with one OpenBLAS thread each, $rounds rounds"
  : >"$tmp/avg.txt"
  for r in $(seq "$rounds"); do
    for n in 1 2 4; do
      # which of the two goes first alternates between rounds
      if [ $((r % 2)) -eq 1 ]; then avg_run "$n" 0; avg_run "$n" 50; else avg_run "$n" 50; avg_run "$n" 0; fi
      echo "cost.w$n $(awk -v a="$(grep "^rate.w$n.s50 " "$tmp/avg.txt" | tail -n 1 | cut -d' ' -f2)" \
        -v b="$(grep "^rate.w$n.s0 " "$tmp/avg.txt" | tail -n 1 | cut -d' ' -f2)" 'BEGIN { print 1 - a / b }')" >>"$tmp/avg.txt"
    done
  done
  echo "== avg summary (medians of $rounds rounds; mlp batch 128, 1 epoch over 119,980 pairs)"
  awk "$awk_median"'
    { vals[$1] = vals[$1] " " $2 }
    END {
      printf "%-8s %16s %16s %12s %10s %11s %8s %14s %14s\n", "workers", "sync 0 pairs/s", "sync 50 pairs/s",
        "avg. cost", "per round", "sync share", "rounds", "round wait ms", "averaging ms"
      for (n = 1; n <= 4; n *= 2) {
        a = median("rate.w" n ".s0"); b = median("rate.w" n ".s50"); c = median("cost.w" n)
        sh = median("share.w" n)
        printf "%-8d %16.0f %16.0f %11.1f%% %9.1f%% %10.1f%% %8d %14.1f %14.2f   target <= 5%%: %s\n", n, a, b,
          100 * (1 - b / a), 100 * c, 100 * sh, median("rounds.w" n), median("wait.w" n), median("avgms.w" n),
          c <= 0.05 ? "met" : (sh <= 0.05 ? "MISSED by the rates (noise?), met by the sync share" : "MISSED")
      }
    }' "$tmp/avg.txt"
}

# one siam-bench --suite load per round, each on a fresh server; appends "KEY VALUE" to load.txt
load_part() {
  echo "== $(date -u +%Y-%m-%dT%H:%MZ) load: $(nproc) cores shared by siam-server (--threads 2) and" \
       "siam-bench, $rounds round(s) of 5 s warm-up + $load_seconds s"
  : >"$tmp/load.txt"
  local k
  for r in $(seq "$rounds"); do
    start_server
    "$bin/siam-bench" --suite load --server "127.0.0.1:$port" --server-pid "$server_pid" \
      --seconds "$load_seconds" --json >"$tmp/load.out" || echo "round $r: siam-bench exited $? (see above)"
    grep -v '^{' "$tmp/load.out" | sed "s/^/round $r: /"
    grep '^{' "$tmp/load.out" >"$tmp/load.json"
    for k in failures train_calls train_calls_per_s train_pairs_per_s train_p50_ms train_p90_ms train_p99_ms \
             train_max_ms stream_min_calls similarity_calls similarity_calls_per_s similarity_p50_ms \
             similarity_p90_ms similarity_p99_ms similarity_max_ms rss_first_mb rss_last_mb rss_max_mb \
             rss_growth_mb rss_flat; do
      echo "$k $(json_field "$tmp/load.json" "$k")" >>"$tmp/load.txt"
    done
    stop_server
  done
  echo "== load summary (median [min..max] of $rounds round(s) of $load_seconds s; latency in ms)"
  awk "$awk_median"'
    { vals[$1] = vals[$1] " " $2; if (!($1 in lo) || $2 + 0 < lo[$1]) lo[$1] = $2 + 0; if ($2 + 0 > hi[$1]) hi[$1] = $2 + 0
      sum[$1] += $2; n[$1]++ }
    function f(key, fmt) { return sprintf(fmt " [" fmt ".." fmt "]", median(key), lo[key], hi[key]) }
    END {
      printf "failed calls: %d in all rounds; RSS flat in %d of %d round(s)\n", sum["failures"], sum["rss_flat"], n["failures"]
      printf "Train, 32 streams:   %s calls, %s calls/s, %s pairs/s; least per stream %s\n", f("train_calls", "%.0f"),
        f("train_calls_per_s", "%.0f"), f("train_pairs_per_s", "%.0f"), f("stream_min_calls", "%.0f")
      printf "  latency p50 %s, p90 %s, p99 %s, max %s\n", f("train_p50_ms", "%.2f"), f("train_p90_ms", "%.2f"),
        f("train_p99_ms", "%.2f"), f("train_max_ms", "%.1f")
      printf "Similarity, 4 callers: %s calls, %s calls/s\n", f("similarity_calls", "%.0f"), f("similarity_calls_per_s", "%.0f")
      printf "  latency p50 %s, p90 %s, p99 %s, max %s\n", f("similarity_p50_ms", "%.2f"), f("similarity_p90_ms", "%.2f"),
        f("similarity_p99_ms", "%.2f"), f("similarity_max_ms", "%.1f")
      printf "server RSS MB after the warm-up: first %s, last %s, max %s, growth %s\n", f("rss_first_mb", "%.1f"),
        f("rss_last_mb", "%.1f"), f("rss_max_mb", "%.1f"), f("rss_growth_mb", "%+.1f")
    }' "$tmp/load.txt"
}

# one siam-bench --suite set-head per round; the summary is a Markdown table of the medians
set_part() {
  echo "== $(date -u +%Y-%m-%dT%H:%MZ) set: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1))," \
       "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, siam-bench --suite set-head (one thread), $rounds round(s)"
  : >"$tmp/set.txt"
  for r in $(seq "$rounds"); do
    "$bin/siam-bench" --suite set-head >"$tmp/set.out" || { echo "round $r: siam-bench exited $? (see above)"; exit 1; }
    grep '\.calls ' "$tmp/set.out" | sed "s/^/round $r: /"
    grep '^set-head ' "$tmp/set.out" >>"$tmp/set.txt"
  done
  grep -E '^set-head (max_n|workspace)' "$tmp/set.out"
  echo "== set summary (medians of $rounds round(s); each round's figure is itself the median of 5 windows," \
       "its p50/p90 over every timed call)"
  awk "$awk_median"'
    $1 == "set-head" && split($2, k, ".") == 6 {
      row = k[1] "." k[2] "." k[3] "." k[4] "." k[5]
      vals[row "." k[6]] = vals[row "." k[6]] " " $3
      if (k[6] == "terms") unit[row] = $4
      if (!seen[row]++) order[++n] = row
    }
    END {
      print "| path | loss | distance | n | dim | calls/s | µs per call, p50 / p90 | images/s | terms/s | active |"
      print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
      for (i = 1; i <= n; i++) { r = order[i]; split(r, k, ".")
        c = median(r ".calls")
        printf "| %s | %s | %s | %s | %s | " (c < 100 ? "%.1f" : "%.0f") " | %.0f / %.0f | %.0f | %.0f %s | %.3f |\n", k[1], k[2], k[3],
          substr(k[4], 2), substr(k[5], 2), c, median(r ".p50"), median(r ".p90"),
          median(r ".images"), median(r ".terms"), unit[r], median(r ".active") }
    }' "$tmp/set.txt"
}

# one fresh server with the training set as its gallery and siam-bench --suite search per round
search_part() {
  local model_args=(--model "${SEARCH_MODEL:-cnn2}" --seed 1) what k
  [ -n "${SEARCH_CKPT:-}" ] && model_args=(--resume "$tmp/search.ckpt")
  what=${SEARCH_CKPT:+checkpoint $SEARCH_CKPT}
  echo "== $(date -u +%Y-%m-%dT%H:%MZ) search: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1))," \
       "siam-server --threads 2 with ${what:-a fresh ${SEARCH_MODEL:-cnn2}} and the 60,000 training images as its gallery," \
       "siam-bench --suite search (1 and 4 callers, $search_seconds s windows), $rounds round(s)"
  : >"$tmp/search.txt"
  for r in $(seq "$rounds"); do
    # a copy: --resume writes the checkpoint (and the gallery beside it) back at shutdown
    [ -n "${SEARCH_CKPT:-}" ] && cp "$SEARCH_CKPT" "$tmp/search.ckpt" && rm -f "$tmp/search.ckpt.gallery"
    start_server --threads 2 "${model_args[@]}" --gallery "$data_dir/train-images-idx3-ubyte.gz" \
      --gallery-labels "$data_dir/train-labels-idx1-ubyte.gz"
    OPENBLAS_NUM_THREADS=1 "$bin/siam-bench" --suite search --server "127.0.0.1:$port" --callers 4 \
      --seconds "$search_seconds" --json >"$tmp/search.out" || echo "round $r: siam-bench exited $? (see above)"
    grep -v '^{' "$tmp/search.out" | sed "s/^/round $r: /"
    grep '^{' "$tmp/search.out" >"$tmp/search.json"
    for k in search_c1_p50_us search_c1_p99_us search_c1_qps search_cN_qps search_cN_p50_us search_cN_p99_us \
             search_ratio similarity_emb_c1_p50_us similarity_emb_c1_rps similarity_emb_cN_p50_us \
             similarity_emb_cN_rps similarity_img_c1_p50_us similarity_img_c1_rps similarity_img_cN_rps \
             similarity_img_ratio reembed_s reembed_search_p50_us reembed_search_p99_us reembed_search_max_us failures; do
      echo "$k $(json_field "$tmp/search.json" "$k")" >>"$tmp/search.txt"
    done
    stop_server
    # the server's own timings: the first embedding at start, then the re-embedding after the round
    sed -n 's/.*embedded with the model of round [0-9]* ([0-9]*-d) in \([0-9.]*\) s.*/\1/p' "$tmp/server.log" |
      awk 'NR == 1 { print "embed_first_s " $1 } NR == 2 { print "reembed_server_s " $1 }' >>"$tmp/search.txt"
  done
  echo "== search summary (medians of $rounds round(s); 4 callers vs 1 within each round)"
  awk "$awk_median"'
    { vals[$1] = vals[$1] " " $2; sum[$1] += $2 }
    function mark(ok) { return ok ? "met" : "MISSED" }
    END {
      printf "Search, 1 query (k=5) against 60,000: 1 caller p50 %.2f ms, p99 %.2f ms  (targets <= 5 / 20 ms: %s / %s)\n",
        median("search_c1_p50_us") / 1000, median("search_c1_p99_us") / 1000, mark(median("search_c1_p50_us") <= 5000), mark(median("search_c1_p99_us") <= 20000)
      printf "  queries/s: 1 caller %.0f, 4 callers %.0f (p50 %.2f ms, p99 %.2f ms); 4 vs 1: %.2fx  (target >= 1.8x: %s)\n",
        median("search_c1_qps"), median("search_cN_qps"), median("search_cN_p50_us") / 1000, median("search_cN_p99_us") / 1000,
        median("search_ratio"), mark(median("search_ratio") >= 1.8)
      printf "Similarity, 1 pair of embeddings (dim 128): p50 %.0f us from 1 caller (target <= 100 us: %s), %.0f us from 4; requests/s %.0f and %.0f\n",
        median("similarity_emb_c1_p50_us"), mark(median("similarity_emb_c1_p50_us") <= 100), median("similarity_emb_cN_p50_us"),
        median("similarity_emb_c1_rps"), median("similarity_emb_cN_rps")
      printf "Similarity, 1 pair of images: p50 %.0f us from 1 caller; requests/s 1 caller %.0f, 4 callers %.0f; 4 vs 1: %.2fx  (target >= 1.8x: %s)\n",
        median("similarity_img_c1_p50_us"), median("similarity_img_c1_rps"), median("similarity_img_cN_rps"),
        median("similarity_img_ratio"), mark(median("similarity_img_ratio") >= 1.8)
      printf "gallery of 60,000: embedded in %.2f s at start and %.2f s after a round (server log); %.2f s from the round to Status reporting it;\n",
        median("embed_first_s"), median("reembed_server_s"), median("reembed_s")
      printf "  Search meanwhile (1 caller): p50 %.2f ms, p99 %.2f ms, max %.1f ms\n",
        median("reembed_search_p50_us") / 1000, median("reembed_search_p99_us") / 1000, median("reembed_search_max_us") / 1000
      printf "failed calls: %d in all rounds\n", sum["failures"]
    }' "$tmp/search.txt"
}

case "$only" in
  local) local_part ;;
  rpc) rpc_part ;;
  avg) avg_part ;;
  load) load_part ;;
  set) set_part ;;
  search) search_part ;;
  all) local_part; rpc_part; avg_part; load_part; set_part; search_part ;;
esac
