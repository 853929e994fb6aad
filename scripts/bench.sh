#!/usr/bin/env bash
# The benchmark: sgemm GFLOP/s at the models' shapes, and training pairs/s of siam against
# PyTorch (Debian's python3-torch) with the same models, batches and thread count, in one run.
#   scripts/bench.sh [THREADS]      (default: all cores)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads=${1:-$(nproc)}
scripts/install-deps.sh --bench
BUILD_DIR=build/normal scripts/build.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== siam-bench --threads $threads"
build/normal/siam-bench --threads "$threads" | tee "$tmp/siam.txt"
echo "== PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') --threads $threads"
OMP_NUM_THREADS=$threads /usr/bin/python3 scripts/bench_torch.py --threads "$threads" | tee "$tmp/torch.txt"

# ratios, and the mlp's rate against what sgemm allows (1.19 MFLOP per pair, see BENCHMARKS.md)
echo "== summary ($threads threads, medians)"
awk -v T="$tmp/torch.txt" '
  BEGIN { while ((getline l < T) > 0) { split(l, f, " "); if (f[1] == "train") torch[f[2]] = f[3] } }
  $1 == "sgemm" { g[$2] = $3 }
  $1 == "train" { siam[$2] = $3; order[++n] = $2 }
  END {
    printf "%-10s %12s %12s %8s\n", "run", "siam pairs/s", "torch pairs/s", "ratio"
    for (i = 1; i <= n; i++) { k = order[i]
      printf "%-10s %12.0f %12.0f %8.2f\n", k, siam[k], torch[k], torch[k] ? siam[k] / torch[k] : 0 }
    # sgemm bound for the mlp at batch 128: the step is ~1.19 MFLOP/pair at the fwd/dW rates
    gf = (g["mlp128.dense1.fwd"] + g["mlp128.dense1.dW"]) / 2
    if (gf > 0) printf "mlp.b128: %.0f%% of the sgemm bound (%.1f GFLOP/s -> %.0f pairs/s)\n",
      100 * siam["mlp.b128"] / (gf * 1e9 / 1.19e6), gf, gf * 1e9 / 1.19e6
  }' "$tmp/siam.txt"
