#!/usr/bin/env bash
# The main job: installs what is missing, builds, and trains the Siamese network on the real
# Fashion-MNIST, then prints the evaluation table. Options are passed to siam-train
# (default here: --epochs 10 --batch-size 128, about half a minute on 2 cores);
# see build/normal/siam-train --help.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
BUILD_DIR=build/normal scripts/build.sh
out=${SIAM_OUT:-out}
mkdir -p "$out"
[ $# -eq 0 ] && set -- --epochs 10 --batch-size 128
build/normal/siam-train --checkpoint "$out/model.ckpt" --metrics "$out/metrics.csv" "$@"
echo "demo: model in $out/model.ckpt, per-step and per-epoch metrics in $out/metrics.csv"
