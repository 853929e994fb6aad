#!/usr/bin/env bash
# The main job, start to finish on the real Fashion-MNIST: installs what is missing, builds,
# starts siam-server, trains with two siam-client workers that average their weights on it,
# stops the server (which writes the global model), evaluates that model, draws the pictures and
# says where everything is.
#   scripts/demo.sh [--recipe pairs|mlp|cnn] [--epochs N] [--workers N] [--model M] [--sync-every K]
#                   [--wire fp32|fp16|bf16|int8] [--sync-wire fp32|fp16|bf16|int8] [--in-flight K]
#                   [--out DIR]
# Defaults: the mlp recipe (semi-hard triplets, about a minute of training on 2 cores), 2 workers,
# out/; --epochs, --model and --sync-every override the recipe's; --wire, --sync-wire and
# --in-flight go to the workers (siam-client). SIAM_DATA (default /usr/share/datasets/fashion-mnist) is the data.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
recipe=mlp epochs='' workers=2 model='' sync='' wire='' syncwire='' inflight='' out=${SIAM_OUT:-out}
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --recipe|--epochs|--workers|--model|--sync-every|--wire|--sync-wire|--in-flight|--out)
      [ $# -ge 2 ] || { echo "demo.sh: $1 needs a value (see --help)" >&2; exit 2; }
      case "$1" in
        --recipe) recipe=$2 ;; --epochs) epochs=$2 ;; --workers) workers=$2 ;; --model) model=$2 ;;
        --sync-every) sync=$2 ;; --wire) wire=$2 ;; --sync-wire) syncwire=$2 ;;
        --in-flight) inflight=$2 ;; --out) out=$2 ;;
      esac
      shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for v in epochs workers sync; do
  [ -z "${!v}" ] && [ $v != workers ] && continue
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "demo.sh: --${v/sync/sync-every} must be a whole number, got '${!v}'" >&2; exit 2; }
done
[ "$workers" -ge 1 ] && [ "${epochs:-1}" -ge 1 ] || { echo "demo.sh: --workers and --epochs must be at least 1" >&2; exit 2; }
case "$recipe" in pairs|mlp|cnn) ;; *) echo "demo.sh: --recipe pairs|mlp|cnn, not '$recipe'" >&2; exit 2 ;; esac
case "$wire" in ''|fp32|fp16|bf16|int8) ;; *) echo "demo.sh: --wire fp32|fp16|bf16|int8, not '$wire'" >&2; exit 2 ;; esac
case "$syncwire" in ''|fp32|fp16|bf16|int8) ;; *) echo "demo.sh: --sync-wire fp32|fp16|bf16|int8, not '$syncwire'" >&2; exit 2 ;; esac
[[ -z "$inflight" || "$inflight" =~ ^[1-8]$ ]] || { echo "demo.sh: --in-flight must be 1..8, got '$inflight'" >&2; exit 2; }
# what the user set overrides the recipe (siam-client takes the recipe's values as defaults)
overrides=()
[ -n "$epochs" ] && overrides+=(--epochs "$epochs")
[ -n "$model" ] && overrides+=(--model "$model")
[ -n "$sync" ] && overrides+=(--sync-every "$sync")
[ -n "$wire" ] && overrides+=(--wire "$wire")
[ -n "$syncwire" ] && overrides+=(--sync-wire "$syncwire")
[ -n "$inflight" ] && overrides+=(--in-flight "$inflight")
data=${SIAM_DATA:-/usr/share/datasets/fashion-mnist}

scripts/install-deps.sh
BUILD_DIR=build/normal scripts/build.sh
bin=$root/build/normal
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/worker-*.log "$out"/worker-*.csv "$out"/worker-*.json

server_pid="" wpids=()
cleanup() {
  for p in "${wpids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'echo "demo.sh: interrupted" >&2; exit 130' INT TERM

# ---- the server: loss head, averaging, global model ----
"$bin/siam-server" --recipe "$recipe" --listen 127.0.0.1:0 --min-workers "$workers" --checkpoint "$out/global.ckpt" \
  >"$out/server.out" 2>"$out/server.log" &
server_pid=$!
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out/server.out")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || { echo "demo.sh: siam-server did not start:" >&2; cat "$out/server.log" >&2; exit 1; }
echo "demo: siam-server on 127.0.0.1:$port; $workers worker(s) train the $recipe recipe" \
     "(docs/USAGE.md#recipes)${overrides[*]:+ with ${overrides[*]}}"

# ---- the workers: one OpenBLAS thread each; worker 0's progress is shown ----
for i in $(seq 0 $((workers - 1))); do
  "$bin/siam-client" --server "127.0.0.1:$port" --recipe "$recipe" ${overrides[@]+"${overrides[@]}"} \
    --workers "$workers" --worker-index "$i" --worker-id "demo-w$i" --threads 1 \
    --data "$data" --metrics "$out/worker-$i.csv" --json >"$out/worker-$i.json" 2>"$out/worker-$i.log" &
  wpids+=($!)
done
tail -n +1 -f "$out/worker-0.log" --pid "${wpids[0]}" 2>/dev/null | grep --line-buffered -E 'epoch [0-9]+/[0-9]+|joined|error' || true
failed=0
for i in "${!wpids[@]}"; do
  if ! wait "${wpids[$i]}"; then
    echo "demo.sh: worker $i failed; the end of $out/worker-$i.log:" >&2
    tail -n 5 "$out/worker-$i.log" >&2
    failed=1
  fi
done
wpids=()
kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""
[ $failed -eq 0 ] || exit 1
[ -f "$out/global.ckpt" ] || { echo "demo.sh: the server wrote no global model; see $out/server.log" >&2; exit 1; }

# ---- evaluation of the global model, the pictures ----
echo "demo: evaluating the global model ($out/global.ckpt)"
"$bin/siam-client" evaluate --recipe "$recipe" --checkpoint "$out/global.ckpt" --data "$data" --plots-dir "$out/eval" \
  | tee "$out/metrics.txt"
"$bin/siam-client" evaluate --recipe "$recipe" --checkpoint "$out/global.ckpt" --data "$data" --no-pixel-knn --json \
  >"$out/metrics.json" 2>/dev/null
scripts/plot.sh --metrics "$out/worker-0.csv" --eval-dir "$out/eval" --out "$out"

rounds=$(grep -c 'closed: ' "$out/server.log" || true)
cat <<EOF

demo: done. The $recipe recipe, $workers worker(s), $rounds averaging round(s).
  global model      $out/global.ckpt
  metrics table     $out/metrics.txt  (JSON: $out/metrics.json)
  pictures          $out/loss.png  $out/distances.png  $out/predictions.png
                    $out/embeddings.png (the test embeddings by PCA)
  training logs     $out/worker-*.log, per-step CSV $out/worker-*.csv, server log $out/server.log
Compare two test images:  $bin/siam-client predict --checkpoint $out/global.ckpt --test-index 0 1
EOF
