#!/usr/bin/env bash
# The benchmark: sgemm GFLOP/s at the models' shapes, and training pairs/s of siam against
# PyTorch (Debian's python3-torch) with the same models, batches and thread count. The two
# programs alternate for ROUNDS rounds so a noisy machine slows both alike; figures are medians.
#   scripts/bench.sh [THREADS] [ROUNDS]      (defaults: all cores, 3 rounds)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads=${1:-$(nproc)}
rounds=${2:-3}
scripts/install-deps.sh --bench
BUILD_DIR=build/normal scripts/build.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $threads thread(s), $rounds rounds," \
     "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
build/normal/siam-bench --only sgemm --threads "$threads" | tee "$tmp/sgemm.txt"
for r in $(seq "$rounds"); do
  build/normal/siam-bench --only train --threads "$threads" --reps 3 | sed "s/^/siam $r /" | tee -a "$tmp/train.txt"
  OMP_NUM_THREADS=$threads /usr/bin/python3 scripts/bench_torch.py --threads "$threads" --reps 3 \
    | sed "s/^/torch $r /" | tee -a "$tmp/train.txt"
done

# medians over rounds, ratios, and the mlp's rate against what sgemm allows
# (1.19 MFLOP per pair, see docs/BENCHMARKS.md)
echo "== summary ($threads thread(s), medians of $rounds rounds)"
awk -v S="$tmp/sgemm.txt" '
  function median(key,   n, i, j, t, v) {
    n = split(vals[key], v, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
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
