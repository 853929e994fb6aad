#!/usr/bin/env bash
# cli_test: the programs as a user runs them: siam-train's --help/--version, bad flags and bad
# data refused with clear messages and the right exit codes, a short real run writing its
# checkpoint and metrics, siam-server's and siam-client's --help, --version and bad command lines, and docs/USAGE.md
# documenting every option each program's --help lists.
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
check "bad choice exits 2 and lists choices" "[ $rc -eq 2 ] && grep -q 'mlp|mlp2|cnn|cnn2' '$tmp/out'"
# the demo refuses a bad command line before it installs or builds anything
bash "$root/scripts/demo.sh" --recipe fastest >"$tmp/out" 2>&1; rc=$?
check "demo.sh --recipe fastest exits 2 naming the recipes" "[ $rc -eq 2 ] && grep -q 'pairs|mlp|cnn' '$tmp/out'"
bash "$root/scripts/demo.sh" --help >"$tmp/out" 2>&1; rc=$?
check "demo.sh --help names --recipe" "[ $rc -eq 0 ] && grep -q -- '--recipe pairs|mlp|cnn' '$tmp/out'"
"$bin" --recipe fastest >"$tmp/out" 2>&1; rc=$?
check "unknown recipe exits 2 and names the recipes" "[ $rc -eq 2 ] && grep -q \"no recipe called 'fastest' (recipes: pairs|mlp|cnn)\" '$tmp/out'"
"$bin" --epochs 3 --recipe cnn --help >"$tmp/out" 2>&1; rc=$?
check "--recipe sets the defaults --help shows; an option given overrides it wherever it stands" \
  "[ $rc -eq 0 ] && grep -Eq -- '--model .*\\(default cnn2\\)' '$tmp/out' && grep -Eq -- '--epochs .*\\(default 3\\)' '$tmp/out' && grep -Eq -- '--loss .*\\(default semi-hard\\)' '$tmp/out' && grep -Eq -- '--margin .*\\(default 0.2\\)' '$tmp/out'"
"$SIAM_BIN_DIR/siam-server" --recipe mlp --margin 0.5 --help >"$tmp/out" 2>&1; rc=$?
check "siam-server --recipe sets the loss; --margin overrides" \
  "[ $rc -eq 0 ] && grep -Eq -- '--loss .*\\(default semi-hard\\)' '$tmp/out' && grep -Eq -- '--margin .*\\(default 0.5\\)' '$tmp/out'"
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

# output paths that cannot be written are refused before the training they would keep
"$bin" --epochs 1 --train-limit 1000 --test-limit 500 --checkpoint "$tmp/no/such/dir/m.ckpt" \
  >"$tmp/out" 2>&1; rc=$?
check "unwritable --checkpoint refused at start, naming the directory" \
  "[ $rc -eq 1 ] && grep -q 'create the directory $tmp/no/such/dir' '$tmp/out' && ! grep -q 'epoch 1/1' '$tmp/out'"
"$bin" --epochs 1 --train-limit 1000 --test-limit 500 --metrics "$tmp/no/m.csv" >"$tmp/out" 2>&1; rc=$?
check "unwritable --metrics refused at start" "[ $rc -eq 1 ] && grep -q '$tmp/no/m.csv cannot be written' '$tmp/out'"
"$(dirname "$bin")/siam-server" --listen 127.0.0.1:0 --checkpoint "$tmp/no/g.ckpt" >"$tmp/out" 2>&1; rc=$?
check "siam-server: unwritable --checkpoint refused at start" \
  "[ $rc -eq 1 ] && grep -q '$tmp/no/g.ckpt cannot be written' '$tmp/out'"
head -c 100 /dev/urandom >"$tmp/garbage.ckpt"
"$(dirname "$bin")/siam-server" --listen 127.0.0.1:0 --resume "$tmp/garbage.ckpt" >"$tmp/out" 2>&1; rc=$?
check "siam-server: --resume of a corrupt file refused naming it" \
  "[ $rc -eq 1 ] && grep -q '$tmp/garbage.ckpt: not a siam checkpoint' '$tmp/out'"
: >"$tmp/empty.ckpt"
"$(dirname "$bin")/siam-server" --listen 127.0.0.1:0 --resume "$tmp/empty.ckpt" >"$tmp/out" 2>&1; rc=$?
check "siam-server: --resume of an empty file refused" "[ $rc -eq 1 ] && grep -q 'truncated' '$tmp/out'"
"$(dirname "$bin")/siam-server" --listen 127.0.0.1:0 --model 'mlp:784-x-128' >"$tmp/out" 2>&1; rc=$?
check "siam-server: unknown --model spec refused" "[ $rc -eq 1 ] && grep -q \"model spec 'mlp:784-x-128'\" '$tmp/out'"

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

# the label convention is only an encoding of the labels for the head: the same run under either
# convention trains bit for bit the same model
"$bin" --epochs 1 --batch-size 64 --train-limit 2000 --test-limit 500 --json >"$tmp/sim.json" 2>/dev/null
"$bin" --epochs 1 --batch-size 64 --train-limit 2000 --test-limit 500 --json \
  --label-convention dissimilar >"$tmp/dis.json" 2>/dev/null
check "--label-convention dissimilar trains the same model" \
  "[ \"\$(sed 's/\"train_pairs_per_s.*//' '$tmp/sim.json')\" = \"\$(sed 's/\"train_pairs_per_s.*//' '$tmp/dis.json')\" ]"

# siam-server and siam-client: help, version, bad command lines
for prog in siam-server siam-client; do
  p=${SIAM_BIN_DIR}/$prog
  "$p" --help >"$tmp/$prog.help" 2>&1; rc=$?
  check "$prog --help exits 0" "[ $rc -eq 0 ] && grep -q '^Usage: $prog' '$tmp/$prog.help'"
  check "$prog --version prints the version" "'$p' --version | grep -Eq '^$prog [0-9]+\.[0-9]+\.[0-9]+$'"
  "$p" --frobnicate >"$tmp/out" 2>&1; rc=$?
  check "$prog unknown flag exits 2" "[ $rc -eq 2 ] && grep -q \"unknown option '--frobnicate'\" '$tmp/out'"
done
srv=${SIAM_BIN_DIR}/siam-server
"$srv" --margin 0 >"$tmp/out" 2>&1; rc=$?
check "siam-server --margin 0 exits 2 naming the flag" "[ $rc -eq 2 ] && grep -q -- '--margin 0' '$tmp/out'"
"$srv" --listen not-an-address >"$tmp/out" 2>&1; rc=$?
check "siam-server with a bad --listen exits 1 naming it" \
  "[ $rc -eq 1 ] && grep -q 'cannot listen on not-an-address' '$tmp/out'"
"$srv" --listen 127.0.0.1:0 >"$tmp/srv1.out" 2>/dev/null &
srv_pid=$!
for _ in $(seq 50); do grep -q listening "$tmp/srv1.out" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/srv1.out")
"$srv" --listen "127.0.0.1:$port" >"$tmp/out" 2>&1; rc=$?
check "a second siam-server on a port in use exits 1 naming the address" \
  "[ $rc -eq 1 ] && grep -q 'cannot listen on 127.0.0.1:$port' '$tmp/out'"
kill -TERM $srv_pid; wait $srv_pid; rc=$?
check "siam-server exits 0 on SIGTERM" "[ $rc -eq 0 ]"
"${SIAM_BIN_DIR}/siam-client" --worker-index 3 --workers 2 >"$tmp/out" 2>&1; rc=$?
check "siam-client worker index beyond workers refused" "[ $rc -eq 2 ] && grep -q 'must be below' '$tmp/out'"

# learning-rate schedules: what does not hold together is refused naming the flag and the fix;
# a step schedule's rate shows in the epoch lines
"$bin" --lr-schedule step >"$tmp/out" 2>&1; rc=$?
check "siam-train --lr-schedule step without drops exits 2 naming --lr-drop-epochs" \
  "[ $rc -eq 2 ] && grep -q 'needs --lr-drop-epochs' '$tmp/out'"
"${SIAM_BIN_DIR}/siam-client" --lr-floor 1e-5 >"$tmp/out" 2>&1; rc=$?
check "siam-client --lr-floor without cosine exits 2 naming the fix" \
  "[ $rc -eq 2 ] && grep -q 'add --lr-schedule cosine' '$tmp/out'"
"$bin" --epochs 3 --lr-schedule step --lr-drop-epochs 3 >"$tmp/out" 2>&1; rc=$?
check "siam-train a drop at the last epoch exits 2" \
  "[ $rc -eq 2 ] && grep -q 'is not below --epochs 3' '$tmp/out'"
"$bin" --epochs 2 --warmup-epochs 2 >"$tmp/out" 2>&1; rc=$?
check "siam-train a warm-up as long as the training exits 2" \
  "[ $rc -eq 2 ] && grep -q -- '--warmup-epochs 2 must be below --epochs 2' '$tmp/out'"
"$srv" --hard-after 0.5 >"$tmp/out" 2>&1; rc=$?
check "siam-server --hard-after without --loss facenet exits 2" \
  "[ $rc -eq 2 ] && grep -q 'add --loss facenet' '$tmp/out'"
"$bin" --epochs 2 --batch-size 64 --train-limit 2000 --test-limit 500 --lr 0.002 \
  --lr-schedule step --lr-drop-epochs 1 --lr-drop-factor 0.25 >/dev/null 2>"$tmp/step.log"; rc=$?
check "a step schedule trains and logs its rate per epoch (0.002, then 0.0005)" \
  "[ $rc -eq 0 ] && grep -q 'epoch 1/2 loss=[0-9.]* lr=0.002 ' '$tmp/step.log' && grep -q 'epoch 2/2 loss=[0-9.]* lr=0.0005 ' '$tmp/step.log'"

# docs/USAGE.md documents every option of every program, in that program's section
usage=$root/docs/USAGE.md
for prog in siam-train siam-server siam-client siam-bench; do
  "${SIAM_BIN_DIR}/$prog" --help >"$tmp/help" 2>&1
  sed -n "/^## $prog\$/,/^## /p" "$usage" >"$tmp/section"
  check "docs/USAGE.md has a section '## $prog'" "[ -s '$tmp/section' ]"
  n=0
  for opt in $(grep -oE '^  --[a-z-]+' "$tmp/help" | sed 's/^ *//'); do
    n=$((n + 1))
    check "docs/USAGE.md documents $prog $opt" "grep -q -- '$opt' '$tmp/section'"
  done
  check "$prog --help lists options for the check to compare (found $n)" "[ $n -ge 3 ]"
done

echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
