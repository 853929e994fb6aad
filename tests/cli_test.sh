#!/usr/bin/env bash
# cli_test: siam-train as a user runs it: --help/--version, bad flags and bad data refused with
# clear messages and the right exit codes, a short real run writing its checkpoint and metrics,
# and the README documenting every option --help lists.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}/siam-train
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0
check() { # check DESCRIPTION COMMAND...
  checks=$((checks + 1))
  if ! ( eval "$2" ) >/dev/null 2>&1; then echo "FAIL: $1"; fails=$((fails + 1)); fi
}

"$bin" --help >"$tmp/help" 2>&1; rc=$?
check "--help exits 0" "[ $rc -eq 0 ]"
check "--help lists --epochs" "grep -q -- '--epochs N' '$tmp/help'"
check "--version prints the version" "'$bin' --version | grep -Eq '^siam-train [0-9]+\.[0-9]+\.[0-9]+$'"

"$bin" --epochs 0 >"$tmp/out" 2>&1; rc=$?
check "out-of-range value exits 2" "[ $rc -eq 2 ]"
check "out-of-range message names the flag" "grep -q -- '--epochs 0 is out of range' '$tmp/out'"
"$bin" --model resnet >"$tmp/out" 2>&1; rc=$?
check "bad choice exits 2 and lists choices" "[ $rc -eq 2 ] && grep -q 'mlp|cnn' '$tmp/out'"
"$bin" --frobnicate >"$tmp/out" 2>&1; rc=$?
check "unknown flag exits 2" "[ $rc -eq 2 ] && grep -q \"unknown option '--frobnicate'\" '$tmp/out'"
"$bin" --lr >"$tmp/out" 2>&1; rc=$?
check "missing value exits 2" "[ $rc -eq 2 ] && grep -q -- '--lr needs a value' '$tmp/out'"
"$bin" --worker-index 2 --workers 2 >"$tmp/out" 2>&1; rc=$?
check "worker index beyond workers refused" "[ $rc -eq 2 ] && grep -q 'must be below' '$tmp/out'"

"$bin" --data "$tmp/nothing-here" >"$tmp/out" 2>&1; rc=$?
check "missing data dir exits 1" "[ $rc -eq 1 ]"
check "missing data names the dir and the fix" \
  "grep -q '$tmp/nothing-here' '$tmp/out' && grep -q 'apt-get install dataset-fashion-mnist' '$tmp/out'"

mkdir -p "$tmp/broken"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  head -c 3000 "${SIAM_DATA_DIR:?}/$f.gz" >"$tmp/broken/$f.gz"
done
"$bin" --data "$tmp/broken" >"$tmp/out" 2>&1; rc=$?
check "truncated data file refused with its name" \
  "[ $rc -eq 1 ] && grep -q 'train-images-idx3-ubyte.gz' '$tmp/out' && grep -qi 'truncated' '$tmp/out'"

# a short real run: 1 epoch on a prefix of the data, JSON report, checkpoint and metrics
echo "old" >"$tmp/model.ckpt"
"$bin" --epochs 1 --batch-size 64 --train-limit 3000 --test-limit 1000 --json \
  --checkpoint "$tmp/model.ckpt" --metrics "$tmp/metrics.csv" >"$tmp/report.json" 2>"$tmp/log"; rc=$?
check "short run exits 0" "[ $rc -eq 0 ]"
check "report is JSON with accuracy and roc_auc" \
  "grep -q '\"accuracy\": 0\.' '$tmp/report.json' && grep -q '\"roc_auc\": 0\.' '$tmp/report.json'"
check "checkpoint replaced (magic SIAMCKPT)" "head -c 8 '$tmp/model.ckpt' | grep -q SIAMCKPT"
check "no temp file left" "[ -z \"\$(ls '$tmp' | grep '\.tmp\.')\" ]"
check "metrics CSV has header, step and epoch rows" \
  "head -1 '$tmp/metrics.csv' | grep -q '^kind,epoch,step,loss' && grep -q '^step,1,' '$tmp/metrics.csv' && grep -q '^epoch,1,' '$tmp/metrics.csv'"
check "plain progress lines when stderr is not a terminal" "grep -q 'epoch 1/1: step' '$tmp/log'"

# the README documents every option --help lists
for opt in $(grep -oE '^  --[a-z-]+' "$tmp/help" | sed 's/^ *//'); do
  check "README documents siam-train $opt" "grep -q -- '$opt' '$root/README.md'"
done

echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
