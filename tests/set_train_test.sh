#!/usr/bin/env bash
# set_train_test: set training end to end on the real data (a prefix of it):
#   1. siam-server --loss batch-hard + one siam-client --head set --epochs 1: exits 0, logs the
#      server's set loss from Status, the server logs the worker's TrainSet stream, and
#      siam-client evaluate on the checkpoint gives ROC AUC > 0.75 (measured 0.846 with this
#      l2norm mlp; threshold with margin for other BLAS builds and CPUs);
#      The server summarises each stream's mining, and warns when the plain mlp's embeddings
#      collapse under its batch-hard loss;
#   2. siam-train --head set --loss semi-hard runs locally: exits 0, ROC AUC > 0.8 (measured
#      0.889), no collapse alarm;
#   3. the collapse alarm end to end: the plain mlp under batch-hard does collapse in its first
#      epoch (mean norm 0.015, ROC AUC 0.5) and siam-train says so in a WARN;
#   4. --loss refuses a name that is not a set loss (exit 2);
#   5. the facenet schedule over the wire: siam-server --loss facenet --hard-after 0.5 and one
#      siam-client (no averaging) with a cosine learning rate and a warm-up train bit for bit the
#      model siam-train --loss facenet --hard-after 0.5 trains in process with the same options
#      (same report), so EmbeddingSet.progress switches the server's mining where the in-process
#      head switches; both log the rate per epoch.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
source "$(dirname "$0")/e2e_lib.sh"
if [ ! -e "$data/train-images-idx3-ubyte.gz" ] && [ ! -e "$data/train-images-idx3-ubyte" ]; then
  echo "SKIP: no Fashion-MNIST in $data"
  exit 77
fi
e2e_begin
spec="in=28x28x1 dense128 relu dense64 l2norm" # l2norm: batch-hard does not collapse it to 0
limits=(--data "$data" --train-limit 10000 --test-limit 2000 --threads 1)
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }

start_server server --loss batch-hard
echo "siam-server --loss batch-hard listening on 127.0.0.1:$port"
"$bin/siam-client" --server "127.0.0.1:$port" --model "$spec" --head set --epochs 1 \
  "${limits[@]}" --worker-id set-w0 --checkpoint "$tmp/set.ckpt" --json \
  >"$tmp/client.out" 2>"$tmp/client.log"
rc=$?
check "siam-client --head set exits 0" "[ $rc -eq 0 ]"
check "siam-client logs the server's set loss" \
  "grep -q \"the server's set loss is batch-hard\" '$tmp/client.log'"
check "the report counts images" "grep -q 'train_images_per_s' '$tmp/client.out'"
check "the server logged the TrainSet stream" \
  "grep -q 'TrainSet stream of set-w0 .* ended OK' '$tmp/server.log'"
check "the server summarised the stream's mining (loss, active, norm, hardest negatives)" \
  "grep -Eq 'TrainSet set-w0: [0-9]+ sets in [0-9]+ s: mean loss [0-9.]+, active [0-9.]+, mean norm [0-9.]+, hardest negatives' '$tmp/server.log'"
# the server's own collapse alarm: the plain mlp (no l2norm) under its batch-hard loss
"$bin/siam-client" --server "127.0.0.1:$port" --head set --epochs 1 "${limits[@]}" \
  --worker-id collapse-w0 --sync-every 0 >"$tmp/collapse_client.out" 2>"$tmp/collapse_client.log"
rc=$?
check "the server says in plain words when a worker's embeddings collapse (client exit $rc)" \
  "[ $rc -eq 0 ] && grep -q 'WARN .*TrainSet collapse-w0: the embeddings are collapsing: .*Lower the learning rate or the margin' '$tmp/server.log'"
"$bin/siam-client" evaluate --checkpoint "$tmp/set.ckpt" "${limits[@]}" --no-pixel-knn --json \
  >"$tmp/eval.out" 2>"$tmp/eval.log"
rc=$?
auc=$(json_field "$tmp/eval.out" roc_auc)
echo "evaluate: ROC AUC ${auc:-?}"
check "evaluate exits 0" "[ $rc -eq 0 ]"
check "batch-hard over TrainSet: ROC AUC ${auc:-?} > 0.75" "gt '${auc:-0}' 0.75"

"$bin/siam-train" --head set --loss semi-hard --epochs 1 "${limits[@]}" --json \
  >"$tmp/train.out" 2>"$tmp/train.log"
rc=$?
auc=$(json_field "$tmp/train.out" roc_auc)
echo "siam-train --head set --loss semi-hard: ROC AUC ${auc:-?}"
check "siam-train --head set --loss semi-hard exits 0" "[ $rc -eq 0 ]"
check "semi-hard: ROC AUC ${auc:-?} > 0.8" "gt '${auc:-0}' 0.8"
check "semi-hard: no collapse alarm" "! grep -q 'collapsing' '$tmp/train.log'"

"$bin/siam-train" --head set --loss batch-hard --epochs 1 "${limits[@]}" \
  >"$tmp/collapse.out" 2>"$tmp/collapse.log"
rc=$?
check "plain mlp under batch-hard: runs (exit $rc) and the collapse alarm says what to do" \
  "[ $rc -eq 0 ] && grep -q 'WARN .*embeddings are collapsing: .*lower the learning rate or the margin' '$tmp/collapse.log'"

"$bin/siam-train" --head set --loss triplet >"$tmp/bad.out" 2>&1
rc=$?
check "siam-train --loss triplet exits 2 naming the choices" \
  "[ $rc -eq 2 ] && grep -q 'semi-hard' '$tmp/bad.out'"
start_server fnserver --loss facenet --hard-after 0.5
small=(--data "$data" --train-limit 3000 --test-limit 500 --threads 1 --epochs 2
  --lr-schedule cosine --warmup-epochs 0.5 --json)
"$bin/siam-client" --server "127.0.0.1:$port" --head set --sync-every 0 "${small[@]}" \
  >"$tmp/fn_client.out" 2>"$tmp/fn_client.log"
rc=$?
check "siam-client --head set on a facenet server exits 0 and logs the loss" \
  "[ $rc -eq 0 ] && grep -q \"the server's set loss is facenet\" '$tmp/fn_client.log'"
"$bin/siam-train" --head set --loss facenet --hard-after 0.5 "${small[@]}" \
  >"$tmp/fn_train.out" 2>"$tmp/fn_train.log"
rc=$?
check "siam-train --loss facenet --hard-after 0.5 exits 0" "[ $rc -eq 0 ]"
check "facenet over TrainSet trains the model siam-train trains in process (same report)" \
  "[ -s '$tmp/fn_train.out' ] && [ \"\$(sed 's/\"train_images_per_s.*//' '$tmp/fn_client.out')\" = \"\$(sed 's/\"train_images_per_s.*//' '$tmp/fn_train.out')\" ]"
check "the epoch lines show the cosine rate" \
  "grep -q 'epoch 2/2 set loss=[0-9.]* lr=[0-9.e-]* ' '$tmp/fn_client.log' && grep -q 'learning rate: cosine' '$tmp/fn_train.log'"

check "no sanitizer reports" \
  "no_sanitizer_reports '$tmp/server.log' '$tmp/client.log' '$tmp/train.log' '$tmp/collapse.log' '$tmp/fnserver.log' '$tmp/fn_client.log' '$tmp/fn_train.log'"

echo "$((checks - fails)) passed, $fails failed"
if [ $fails -ne 0 ]; then
  for f in client.log server.log eval.log train.log collapse.log fn_client.log fnserver.log \
    fn_train.log; do
    echo "---- $f"; tail -n 15 "$tmp/$f"
  done
  exit 1
fi
