#!/usr/bin/env bash
# search_test: `siam-client search` and `siam-client gallery-add` against real siam-server
# processes on 127.0.0.1, with a small model trained here (siam-train --recipe mlp --epochs 1) on
# the real Fashion-MNIST data:
#   1. identification against the training set: siam-server --gallery (the 60,000 training images
#      and labels); Search of the 10,000 test images (k = 1) gives for every image the nearest
#      training image, its class and its distance that `siam-client evaluate --knn-k 1
#      --knn-predictions` computes offline for the same checkpoint, so the same accuracy
#      (tests/search_check.py compares them); with k = 5 every answer's order, scores
#      (1 / (1 + (D/T)^2)) and predicted label and confidence (the distance-weighted vote) agree
#      with Python's; the text output names the classes and the summary the accuracy;
#   2. PGM queries (written by Python from test images) get the answers of their --test-index;
#      --picture draws a PNG with --gallery-images (no temporary file left), and without gnuplot
#      says how to install it before searching;
#   3. few-shot: a server with an empty gallery answers FAILED_PRECONDITION (passed on); 5
#      training images per class added with gallery-add get the ids 0..49; the test set's top-1
#      against them equals evaluate --knn-k 1 against exactly those 50 images (an IDX subset
#      written by Python), image by image; one more is RESOURCE_EXHAUSTED at --gallery-max 50;
#   4. errors: no model, unreachable server, bad command lines (k, index lists, labels), a PGM of
#      the wrong size, a label too long (INVALID_ARGUMENT passed on), a token server without the
#      token (UNAUTHENTICATED and the fix), all exit non-zero naming the problem;
#   5. siam-bench --suite search, a smoke run: every row, the gallery re-embedded after a round;
#   6. docs/USAGE.md documents every option of both subcommands.
# The sanitizer build searches 2,000 test images instead of 10,000.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
client=$bin/siam-client
sc=$root/tests/search_check.py
t_start=$(date +%s.%N)
python_stubs "$tmp/stubs"
command -v gnuplot >/dev/null || { echo "FAIL gnuplot not found: apt-get install gnuplot-nox (scripts/install-deps.sh)"; exit 1; }
n_test=10000
if is_sanitizer_build "$client"; then n_test=2000; fi
last=$((n_test - 1))
img=$data/train-images-idx3-ubyte.gz lab=$data/train-labels-idx1-ubyte.gz
[ -f "$img" ] || img=$data/train-images-idx3-ubyte
[ -f "$lab" ] || lab=$data/train-labels-idx1-ubyte

# ---- a small model and its offline kNN --------------------------------------------------------
"$bin/siam-train" --recipe mlp --epochs 1 --data "$data" --checkpoint "$tmp/m.ckpt" \
  >"$tmp/train.out" 2>"$tmp/train.log"
[ -s "$tmp/m.ckpt" ] || { tail "$tmp/train.log"; echo "FAIL siam-train wrote no checkpoint"; exit 1; }
"$client" evaluate --checkpoint "$tmp/m.ckpt" --recipe mlp --data "$data" --test-limit "$n_test" \
  --knn-k 1 --knn-predictions "$tmp/knn1.tsv" --no-pixel-knn --json >"$tmp/eval.json" 2>"$tmp/eval.log"
check "evaluate --knn-k 1 --knn-predictions: exit 0, knn_k 1, one line per test image" \
  "[ \"\$(json_field '$tmp/eval.json' knn_k)\" = 1 ] && [ \$(grep -vc '^#' '$tmp/knn1.tsv') -eq $n_test ]"
check "the predictions file's accuracy is evaluate's knn_accuracy" \
  "awk -v want=\$(json_field '$tmp/eval.json' knn_accuracy) '!/^#/ { n++; r += (\$2 == \$3) }
     END { exit !(n > 0 && (r / n - want) ^ 2 < 1e-12) }' '$tmp/knn1.tsv'"

# ---- 1. the training set as the gallery ---------------------------------------------------------
cp "$tmp/m.ckpt" "$tmp/a.ckpt"
start_server full --resume "$tmp/a.ckpt" --recipe mlp --gallery "$img" --gallery-labels "$lab"
full=127.0.0.1:$port full_pid=$server_pid
"$py" "$sc" wait-gallery --server "$full" --stubs "$tmp/stubs" --size 60000 >"$tmp/ready.txt"
check "siam-server --gallery: 60,000 items embedded ($(cat "$tmp/ready.txt"))" "[ $? -eq 0 ]"
read -r _ _ _ margin shape <"$tmp/ready.txt"
threshold=$(awk -v m="$margin" 'BEGIN { printf "%.9g", m / 2 }')
t0=$(date +%s.%N)
"$client" search --server "$full" --test-index "0-$last" -k 1 --json >"$tmp/s1.jsonl" 2>"$tmp/s1.err"
rc=$?
echo "   (search of $n_test test images, k=1: $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s)"
check "search --test-index 0-$last -k 1 --json: exit 0, $n_test answers and a summary (rc $rc)" \
  "[ $rc -eq 0 ] && [ \$(grep -c '^{\"query\"' '$tmp/s1.jsonl') -eq $n_test ] && tail -n 1 '$tmp/s1.jsonl' | grep -q '^{\"summary\"'"
"$py" "$sc" compare-knn "$tmp/knn1.tsv" "$tmp/s1.jsonl" >"$tmp/compare.txt"
rc=$?
sed 's/^/   /' "$tmp/compare.txt"
check "Search top-1 = evaluate's kNN (k=1) for every test image: nearest id, class, distance" "[ $rc -eq 0 ]"
check "search's summary accuracy = evaluate's knn_accuracy" \
  "awk -v a=\$(json_field '$tmp/eval.json' knn_accuracy) -v b=\$(json_field '$tmp/s1.jsonl' top1_accuracy) 'BEGIN { exit !((a - b) ^ 2 < 1e-12) }'"
"$client" search --server "$full" --test-index 0-299 -k 5 --batch 37 --json >"$tmp/s5.jsonl" 2>&1
"$py" "$sc" check-matches "$tmp/s5.jsonl" --threshold "$threshold" --k 5 >"$tmp/matches.txt"
rc=$?
sed 's/^/   /' "$tmp/matches.txt"
check "k=5 in batches of 37: order, scores at T=$threshold, weighted vote and confidence as computed in Python" "[ $rc -eq 0 ]"
"$client" search --server "$full" --test-index 0,23 -k 3 >"$tmp/s.txt" 2>&1
check "text output: the query's class name, the predicted label, a table of 3 matches, the summary" \
  "grep -q '^query 1: test image 0 (class 9 Ankle boot)' '$tmp/s.txt' && grep -q '^  predicted .*, confidence ' '$tmp/s.txt' &&
   [ \$(grep -cE '^ +[123] +[0-9]+ +[0-9] [A-Z]' '$tmp/s.txt') -eq 6 ] && grep -q 'top-1 accuracy' '$tmp/s.txt' &&
   grep -q 'against the 60000-item gallery' '$tmp/s.txt'"

# ---- 2. PGM queries and the picture ---------------------------------------------------------------
"$py" "$sc" pgm "$data" "$tmp" 0 17
"$client" search --server "$full" --image "$tmp/test_0.pgm" "$tmp/test_17.pgm" -k 4 --json >"$tmp/pgm.jsonl" 2>&1
"$client" search --server "$full" --test-index 0,17 -k 4 --json >"$tmp/idx.jsonl" 2>&1
check "PGM files of test images 0 and 17 get the matches of --test-index 0,17" \
  "$py -c 'import json,sys
a=[json.loads(l) for l in open(\"$tmp/pgm.jsonl\") if l.startswith(\"{\\\"query\")]
b=[json.loads(l) for l in open(\"$tmp/idx.jsonl\") if l.startswith(\"{\\\"query\")]
sys.exit(not (len(a) == 2 and [x[\"matches\"] for x in a] == [x[\"matches\"] for x in b] and \"class\" not in a[0]))'"
mkdir -p "$tmp/pic"
"$client" search --server "$full" --test-index 0-24 -k 12 --picture "$tmp/pic/search.png" \
  --gallery-images "$img" >/dev/null 2>"$tmp/pic.err"
rc=$?
read -r pw ph < <("$py" "$sc" png-size "$tmp/pic/search.png" 2>/dev/null)
check "--picture: a PNG of 20 rows of 1 + 10 tiles (${pw:-?}x${ph:-?}), no temporary file left (rc $rc)" \
  "[ $rc -eq 0 ] && [ \"\${pw:-0}\" -ge 900 ] && [ \"\${ph:-0}\" -ge 1500 ] && [ \$(ls '$tmp/pic' | wc -l) -eq 1 ] &&
   grep -q 'wrote $tmp/pic/search.png (20 of 25 queries)' '$tmp/pic.err'"
mkdir -p "$tmp/nognu"
for t in ls; do ln -s "$(command -v $t)" "$tmp/nognu/$t"; done
PATH=$tmp/nognu "$client" search --server "$full" --test-index 0 --picture "$tmp/x.png" >"$tmp/nognu.out" 2>&1
rc=$?
check "--picture without gnuplot: exit 1 naming apt-get install gnuplot-nox, no search (rc $rc)" \
  "[ $rc -eq 1 ] && grep -q 'apt-get install gnuplot-nox' '$tmp/nognu.out' && ! grep -q '^query' '$tmp/nognu.out'"

# ---- 3. few-shot: 5 training images per class --------------------------------------------------------
idx=$("$py" "$sc" subset "$data" "$tmp/few" --per-class 5)
cp "$tmp/m.ckpt" "$tmp/b.ckpt"
start_server few --resume "$tmp/b.ckpt" --recipe mlp --gallery-max 50
few=127.0.0.1:$port few_pid=$server_pid
"$client" search --server "$few" --test-index 3 >"$tmp/empty.out" 2>&1
rc=$?
check "search of an empty gallery: exit 1, FAILED_PRECONDITION with the server's fix (rc $rc)" \
  "[ $rc -eq 1 ] && grep -q 'Search: FAILED_PRECONDITION: the gallery is empty' '$tmp/empty.out' && grep -q 'AddToGallery' '$tmp/empty.out'"
"$client" gallery-add --server "$few" --train-index "$idx" --json >"$tmp/add.json" 2>"$tmp/add.err"
rc=$?
check "gallery-add --train-index (5 per class): ids 0..49 in order, labels their classes (rc $rc)" \
  "[ $rc -eq 0 ] && $py -c 'import json,gzip,sys
a=json.load(open(\"$tmp/add.json\"))
idx=[int(i) for i in \"$idx\".split(\",\")]
lab=gzip.open(\"$lab\").read()[8:] if \"$lab\".endswith(\".gz\") else open(\"$lab\",\"rb\").read()[8:]
sys.exit(not (a[\"added\"] == 50 and a[\"gallery_size\"] == 50 and [i[\"id\"] for i in a[\"items\"]] == list(range(50))
  and [i[\"label\"] for i in a[\"items\"]] == [str(lab[i]) for i in idx]))'"
"$client" gallery-add --server "$few" --image "$tmp/test_0.pgm" --label boot >"$tmp/full.out" 2>&1
rc=$?
check "gallery-add beyond --gallery-max 50: exit 1, RESOURCE_EXHAUSTED naming --gallery-max (rc $rc)" \
  "[ $rc -eq 1 ] && grep -q 'AddToGallery: RESOURCE_EXHAUSTED: .*--gallery-max' '$tmp/full.out'"
"$client" evaluate --checkpoint "$tmp/m.ckpt" --recipe mlp --data "$tmp/few" --test-limit "$n_test" \
  --knn-k 1 --knn-predictions "$tmp/few_knn.tsv" --no-pixel-knn --json >"$tmp/few_eval.json" 2>"$tmp/few_eval.log"
check "evaluate against the 50-image subset: train_images 50" "[ \"\$(json_field '$tmp/few_eval.json' train_images)\" = 50 ]"
"$client" search --server "$few" --test-index "0-$last" -k 1 --json >"$tmp/few.jsonl" 2>&1
"$py" "$sc" compare-knn "$tmp/few_knn.tsv" "$tmp/few.jsonl" >"$tmp/few_compare.txt"
rc=$?
sed 's/^/   /' "$tmp/few_compare.txt"
check "few-shot top-1 against the added images = evaluate --knn-k 1 against the same 50 images" "[ $rc -eq 0 ]"

# ---- 4. errors -----------------------------------------------------------------------------------
expect() { # DESCRIPTION RC PATTERN COMMAND...
  local what=$1 want=$2 pattern=$3
  shift 3
  "$@" >"$tmp/err.out" 2>&1
  local rc=$?
  check "$what: exit $want, '$pattern' (rc $rc)" "[ $rc -eq $want ] && grep -qF -- \"$pattern\" '$tmp/err.out'"
}
start_server nomodel
nomodel=127.0.0.1:$port nomodel_pid=$server_pid
expect "search before the server has a model" 1 "FAILED_PRECONDITION: the server has no model" \
  "$client" search --server "$nomodel" --test-index 1
expect "gallery-add before the server has a model" 1 "AddToGallery: FAILED_PRECONDITION" \
  "$client" gallery-add --server "$nomodel" --test-index 1
expect "search of an unreachable server" 1 "Is it running? Start it with: siam-server --listen 127.0.0.1:1" \
  "$client" search --server 127.0.0.1:1 --test-index 1
expect "search -k 0" 2 "--k 0" "$client" search --server "$full" --test-index 1 -k 0
expect "search -k 65" 2 "--k 65" "$client" search --server "$full" --test-index 1 -k 65
expect "search without queries" 2 "give the queries" "$client" search --server "$full"
expect "a backwards range" 2 "the range 9-3 is backwards" "$client" search --server "$full" --test-index 9-3
expect "an index list with a letter" 2 "expected indices such as 0,17,42" "$client" search --server "$full" --test-index 1,b
expect "an index beyond the test set" 1 "--test-index 10000 is out of range: the test set has 10000 images" \
  "$client" search --server "$full" --data "$data" --test-index 3,10000
"$py" -c "open('$tmp/w27.pgm','wb').write(b'P5\n27 28\n255\n' + bytes(27 * 28))"
expect "a 27x28 PGM" 1 "w27.pgm: image is 27x28, expected 28x28" \
  "$client" search --server "$full" --image "$tmp/w27.pgm"
expect "gallery-add of a PGM without a label" 2 "needs a label: --label NAME" \
  "$client" gallery-add --server "$full" --image "$tmp/test_0.pgm"
expect "gallery-add --labels of the wrong count" 2 "--labels gives 1 label for 2 images" \
  "$client" gallery-add --server "$full" --image "$tmp/test_0.pgm" "$tmp/test_17.pgm" --labels boot
expect "gallery-add with a label of 65 bytes" 1 "INVALID_ARGUMENT: labels[0]" \
  "$client" gallery-add --server "$full" --test-index 0 --label "$(printf 'x%.0s' $(seq 65))"
expect "--gallery-images without --picture" 2 "--gallery-images is for --picture" \
  "$client" search --server "$full" --test-index 0 --gallery-images "$img"
printf 'search-test-%s\n' "$RANDOM$RANDOM" >"$tmp/token"
chmod 600 "$tmp/token"
start_server token --model mlp --auth-token-file "$tmp/token"
token=127.0.0.1:$port token_pid=$server_pid
expect "gallery-add to a token server without the token" 1 "UNAUTHENTICATED" \
  "$client" gallery-add --server "$token" --test-index 0
check "  ... and says to give --auth-token-file" "grep -q 'give the token with --auth-token-file' '$tmp/err.out'"
"$client" gallery-add --server "$token" --auth-token-file "$tmp/token" --test-index 0,1 --labels a,b >"$tmp/tok.out" 2>&1
rc=$?
check "gallery-add with the token: exit 0, ids 0 and 1 (rc $rc)" \
  "[ $rc -eq 0 ] && grep -Eq '^ +0 +a +test image 0$' '$tmp/tok.out' && grep -Eq '^ +1 +b +test image 1$' '$tmp/tok.out'"
"$client" search --server "$token" --auth-token-file "$tmp/token" --test-index 0 -k 2 >"$tmp/tok.out" 2>&1
check "search with the token: test image 0 finds itself (id 0, distance 0)" \
  "grep -Eq '^ +1 +0 +a +0\.0000 +1\.0000$' '$tmp/tok.out'"

# ---- 5. siam-bench --suite search (smoke) -----------------------------------------------------------
"$bin/siam-bench" --suite search --server "$full" --callers 2 --seconds 0.3 --json >"$tmp/bench.out" 2>"$tmp/bench.err"
rc=$?
sed 's/^/   /' "$tmp/bench.out" | grep -v '^   {'
check "siam-bench --suite search: exit 0, every row, the gallery re-embedded (rc $rc)" \
  "[ $rc -eq 0 ] && for r in search.c1.p50 search.c1.p99 search.cN.qps search.ratio similarity_emb.c1.p50 \
     similarity_emb.cN.p50 similarity_img.c1.rps similarity_img.ratio reembed.seconds reembed.search_p99; do
     grep -q \"^search \$r \" '$tmp/bench.out' || exit 1; done && grep -Eq '\"reembed_round\": [1-9][0-9]*,' '$tmp/bench.out'"

for name in full few nomodel token; do # SIGTERM: exit 0 (LeakSanitizer checks at exit)
  pidvar=${name}_pid
  kill -TERM "${!pidvar}" 2>/dev/null
  wait "${!pidvar}"
  check "server $name exits 0 on SIGTERM (rc $?)" "[ $? -eq 0 ]"
done
check "no sanitizer report in the servers' logs or the clients' output" "no_sanitizer_reports '$tmp'/*.log '$tmp'/*.err '$tmp'/*.out"

# ---- 6. docs/USAGE.md ----------------------------------------------------------------------------
usage=$root/docs/USAGE.md
for sub in search gallery-add; do
  "$client" "$sub" --help >"$tmp/$sub.help" 2>&1
  sed -n "/^## siam-client $sub\$/,/^## /p" "$usage" >"$tmp/section"
  check "docs/USAGE.md has a section '## siam-client $sub'" "[ -s '$tmp/section' ]"
  n=0
  for opt in $(grep -oE '^  --[a-z-]+' "$tmp/$sub.help" | sed 's/^ *//'); do
    n=$((n + 1))
    check "docs/USAGE.md documents siam-client $sub $opt" "grep -q -- '$opt' '$tmp/section'"
  done
  check "siam-client $sub --help lists options for the check to compare (found $n)" "[ $n -ge 3 ]"
done

echo "search_test: $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t_start}") s"
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
