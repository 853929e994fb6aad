#!/usr/bin/env bash
# gallery_test: the gallery and Search through real siam-server processes on the real data.
#   1. siam-train makes a model (mlp2, set head, 1 epoch of 6,000 images); siam-server --resume
#      it with --gallery/--gallery-labels the 60,000 Fashion-MNIST training images.
#   2. tests/gallery_check.py search: Status, Search by images and embeddings against the IDX
#      labels and image Similarity, AddToGallery of five images searchable at once, bad requests.
#   3. SIGTERM: the gallery is saved beside the checkpoint; siam-server --resume restores it
#      (gallery_check.py restored: the added items, ids that go on).
#   4. A damaged gallery file (a flipped byte, cut short) is refused at start naming the file;
#      --gallery without --gallery-labels and a gallery of another shape are refused too.
#   5. Without --checkpoint the log says the gallery lives in memory only.
#   6. With --auth-token-file, AddToGallery and Search need the token.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
root=$(cd "$(dirname "$0")/.." && pwd)
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
. "$root/tests/e2e_lib.sh"
e2e_begin
py=/usr/bin/python3
check_py="$root/tests/gallery_check.py"
[ -f "$data/train-images-idx3-ubyte.gz" ] ||
  { echo "FAIL $data/train-images-idx3-ubyte.gz missing: apt-get install dataset-fashion-mnist"; exit 1; }
python_stubs "$tmp/stubs"
images=$data/train-images-idx3-ubyte.gz labels=$data/train-labels-idx1-ubyte.gz
export OPENBLAS_NUM_THREADS=1

# 1. a model and a server with the training set as its gallery
"$bin/siam-train" --model mlp2 --head set --epochs 1 --train-limit 6000 --test-limit 500 \
  --data "$data" --checkpoint "$tmp/m.ckpt" >"$tmp/train.out" 2>"$tmp/train.log" ||
  { tail "$tmp/train.log"; echo "FAIL siam-train"; exit 1; }
start_server s1 --resume "$tmp/m.ckpt" --gallery "$images" --gallery-labels "$labels"
check "the log names the gallery and where it is saved" \
  "grep -q 'gallery: 60000 items of 28x28x1 from $images' '$tmp/s1.log' &&
   grep -q 'gallery: saved to $tmp/m.ckpt.gallery' '$tmp/s1.log'"

# 2. Search and AddToGallery
timeout 300 "$py" "$check_py" --server "127.0.0.1:$port" --stubs "$tmp/stubs" --data "$data" \
  search >"$tmp/search.txt" 2>&1
rc=$?
cat "$tmp/search.txt"
check "gallery_check.py search" "[ $rc -eq 0 ]"
check "the gallery was embedded in the background (one log line)" \
  "grep -q '60000 items embedded with the model of round 0 (64-d)' '$tmp/s1.log'"

# 3. SIGTERM saves; --resume restores
kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
check "siam-server exits 0 after SIGTERM" "[ $rc -eq 0 ]"
check "the gallery file is beside the checkpoint" "[ -s '$tmp/m.ckpt.gallery' ]"
check "the gallery file starts with its magic" \
  "head -c 8 '$tmp/m.ckpt.gallery' | grep -q SIAMGLRY"
start_server s2 --resume "$tmp/m.ckpt" --gallery "$images" --gallery-labels "$labels"
check "--resume restores the saved gallery instead of --gallery" \
  "grep -q 'gallery: 60005 items of 28x28x1 from $tmp/m.ckpt.gallery' '$tmp/s2.log' &&
   grep -q 'not loaded: the gallery saved beside the checkpoint' '$tmp/s2.log'"
timeout 300 "$py" "$check_py" --server "127.0.0.1:$port" --stubs "$tmp/stubs" --data "$data" \
  restored >"$tmp/restored.txt" 2>&1
rc=$?
cat "$tmp/restored.txt"
check "gallery_check.py restored" "[ $rc -eq 0 ]"
kill -TERM "$server_pid"
wait "$server_pid"

# 4. damaged files and bad flags are refused at start, naming the file and the problem
refused=0
refuses() { # WHAT EXPECTED-EXIT PATTERN ARGS...: siam-server exits with EXPECTED-EXIT, log has PATTERN
  local what=$1 want=$2 pattern=$3 log
  shift 3
  refused=$((refused + 1))
  log="$tmp/refused$refused.log"
  timeout 60 "$bin/siam-server" --listen 127.0.0.1:0 "$@" >/dev/null 2>"$log"
  local rc=$?
  check "$what: exit $rc, expected $want ($(grep -o 'error: .*' "$log" | head -c 160))" \
    "[ $rc -eq $want ] && grep -qF -- \"$pattern\" '$log'"
}
cp "$tmp/m.ckpt.gallery" "$tmp/good.gallery"
size=$(stat -c %s "$tmp/good.gallery")
cp "$tmp/good.gallery" "$tmp/flipped.gallery"
printf '\x55' | dd of="$tmp/flipped.gallery" bs=1 seek=$((size - 1000)) conv=notrunc status=none
refuses "a flipped byte" 1 "$tmp/flipped.gallery: CRC mismatch" --gallery "$tmp/flipped.gallery"
head -c $((size / 2)) "$tmp/good.gallery" >"$tmp/cut.gallery"
refuses "a file cut short" 1 "$tmp/cut.gallery: truncated" --gallery "$tmp/cut.gallery"
cp "$tmp/good.gallery" "$tmp/r.ckpt.gallery"
cp "$tmp/m.ckpt" "$tmp/r.ckpt"
printf '\x02' | dd of="$tmp/r.ckpt.gallery" bs=1 seek=8 conv=notrunc status=none
refuses "--resume with a gallery of another version" 1 \
  "r.ckpt.gallery: gallery file version 2, this build reads version 1" --resume "$tmp/r.ckpt"
refuses "--gallery IDX without --gallery-labels" 2 "give their labels with --gallery-labels" \
  --gallery "$images"
refuses "--gallery-labels without --gallery" 2 "--gallery-labels needs --gallery" \
  --gallery-labels "$labels"
refuses "a gallery of another shape than the model's" 2 \
  "good.gallery: the images are 28x28x1, the model takes 8x8x1" --model "in=8x8x1 dense4" \
  --gallery "$tmp/good.gallery"
refuses "more items than --gallery-max" 1 "more than the gallery's limit of 1000 (siam-server --gallery-max" \
  --gallery "$tmp/good.gallery" --gallery-max 1000

# 5. a gallery file without a checkpoint: in memory only, said once
start_server s3 --model mlp2 --gallery "$tmp/good.gallery"
check "without --checkpoint: 'in memory only' in the log" \
  "[ \$(grep -c 'gallery: in memory only' '$tmp/s3.log') -eq 1 ]"
kill -TERM "$server_pid"
wait "$server_pid"

# 6. tokens
printf 'gallery-test-token-%s\n' "$RANDOM$RANDOM" >"$tmp/token"
chmod 600 "$tmp/token"
start_server s4 --model mlp2 --auth-token-file "$tmp/token"
timeout 120 "$py" "$check_py" --server "127.0.0.1:$port" --stubs "$tmp/stubs" --data "$data" \
  --token-file "$tmp/token" token >"$tmp/token.txt" 2>&1
rc=$?
cat "$tmp/token.txt"
check "gallery_check.py token" "[ $rc -eq 0 ]"
kill -TERM "$server_pid"
wait "$server_pid"

check "no sanitizer reports" "no_sanitizer_reports $tmp/*.log"
echo "gallery_test: $((checks - fails)) of $checks checks passed"
[ "$fails" -eq 0 ]
