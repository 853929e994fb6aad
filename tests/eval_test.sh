#!/usr/bin/env bash
# eval_test: `siam-client evaluate`, `siam-client predict` and scripts/plot.sh on a small model
# trained here with siam-train (prefix of the real Fashion-MNIST):
#   1. evaluate --json has every key, and the pair metrics equal siam-train's own report for the
#      same checkpoint (same test pairs, same embeddings; not VAL: evaluate's threshold comes from
#      sampled training pairs, siam-train's from its test pairs); its test loss equals the metrics
#      CSV's last val_loss; VAL at FAR 1e-3 uses 100,000 + 100,000 pairs on each side, or every
#      distinct pair when there are fewer (counted here in Python); the table shows the same
#      figures; the plot data files agree with it; the PCA map (embeddings.tsv) has one point per
#      test image, centred and uncorrelated coordinates whose variances have the ratio of the
#      explained variances; the retrieval figures (Recall@1, MAP@R) are in [0,1], and on raw
#      pixels of a 300-image test subset equal an independent computation (Python, exact integer
#      distances);
#   2. predict on test indices and on PGM files written here (by Python, independently of
#      siam's PGM code) from the same test images gives identical distances; identical images
#      give distance 0 and "same";
#   3. errors (missing or corrupt checkpoint, index out of range, 27x28 or truncated PGM, bad
#      command lines) exit non-zero with a message naming the problem;
#   4. plot.sh writes four valid PNGs (loss, distances, predictions, embeddings); without
#      gnuplot it says how to install it;
#   5. docs/USAGE.md documents every option of both subcommands.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0
source "$(dirname "$0")/e2e_lib.sh"
client=$bin/siam-client
limits=(--train-limit 6000 --test-limit 2000)

# ---- a small model -----------------------------------------------------------------------------
"$bin/siam-train" --epochs 1 --batch-size 128 "${limits[@]}" --data "$data" --json \
  --checkpoint "$tmp/m.ckpt" --metrics "$tmp/m.csv" >"$tmp/train.json" 2>"$tmp/train.log"
check "siam-train writes the checkpoint" "[ -s '$tmp/m.ckpt' ]" || true
[ -s "$tmp/m.ckpt" ] || { cat "$tmp/train.log"; exit 1; }

# ---- 1. evaluate ---------------------------------------------------------------------------------
t0=$(date +%s.%N)
"$client" evaluate --checkpoint "$tmp/m.ckpt" "${limits[@]}" --data "$data" --json \
  --plots-dir "$tmp/plots" >"$tmp/eval.json" 2>"$tmp/eval.log"; rc=$?
t1=$(date +%s.%N)
echo "evaluate took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
check "evaluate --json exits 0" "[ $rc -eq 0 ]"
check "evaluate logs progress to stderr" "grep -q 'kNN (k=5) in embedding space' '$tmp/eval.log'"
$py - "$tmp/eval.json" "$tmp/train.json" "$tmp/m.csv" >"$tmp/json.out" 2>&1 <<'EOF'
import csv, json, sys
ev = json.load(open(sys.argv[1]))
tr = json.load(open(sys.argv[2]))
keys = ["checkpoint", "spec", "step", "train_images", "test_images", "train_pairs", "test_pairs",
        "margin", "threshold", "accuracy", "roc_auc", "best_threshold_train",
        "accuracy_at_best_threshold", "train_accuracy_at_best_threshold", "val_at_far_1e-3",
        "val_threshold", "far", "val_test_positive_pairs", "val_test_negative_pairs",
        "val_train_positive_pairs", "val_train_negative_pairs", "train_val_at_far_1e-3",
        "train_far", "test_threshold_val_at_far_1e-3", "test_threshold", "test_threshold_far",
        "positive_distance_mean", "positive_distance_std",
        "negative_distance_mean", "negative_distance_std", "test_loss", "knn_k", "knn_accuracy",
        "pixel_knn_accuracy", "recall_at_1", "map_at_r", "pixel_recall_at_1", "pixel_map_at_r",
        "seconds"]
bad = [k for k in keys if k not in ev]
extra = [k for k in ev if k not in keys]
print("missing keys:", bad, "unknown keys:", extra)
# not val_at_far_1e-3, val_threshold, far: siam-train reports VAL on its test pairs with the
# threshold chosen on them, evaluate on sampled pairs with the threshold from training pairs
same = ["spec", "train_pairs", "test_pairs", "threshold", "accuracy", "roc_auc",
        "best_threshold_train", "accuracy_at_best_threshold", "positive_distance_mean",
        "positive_distance_std", "negative_distance_mean", "negative_distance_std"]
diff = [(k, ev.get(k), tr.get(k)) for k in same if ev.get(k) != tr.get(k)]
print("differ from siam-train:", diff)
rows = [r for r in csv.DictReader(open(sys.argv[3])) if r["kind"] == "epoch"]
val_loss = float(rows[-1]["val_loss"])
print("test_loss", ev.get("test_loss"), "csv val_loss", val_loss)
ok = (not bad and not extra and not diff and abs(ev["test_loss"] - val_loss) < 2e-6
      and ev["train_images"] == 6000 and ev["test_images"] == 2000 and ev["knn_k"] == 5
      and 0.5 < ev["knn_accuracy"] <= 1 and 0.7 < ev["pixel_knn_accuracy"] <= 1
      and ev["step"] > 0
      and all(0 <= ev[k] <= 1 for k in ("recall_at_1", "map_at_r", "pixel_recall_at_1",
                                        "pixel_map_at_r"))
      and 0.5 < ev["pixel_recall_at_1"]
      and set(ev["seconds"]) == {"load", "embed", "val", "knn", "pixel_knn", "retrieval",
                                 "total"}
      and all(ev["val_%s_%s_pairs" % (side, kind)] == 100000
              for side in ("train", "test") for kind in ("positive", "negative"))
      and ev["train_far"] <= 1e-3 and 0 <= ev["far"] < 0.01
      and 0 < ev["val_at_far_1e-3"] <= 1 and 0 < ev["train_val_at_far_1e-3"] <= 1
      and ev["test_threshold_far"] <= 1e-3 and 0 <= ev["test_threshold_val_at_far_1e-3"] <= 1
      and ev["val_threshold"] > 0)
print("VAL", ev.get("val_at_far_1e-3"), "FAR", ev.get("far"), "threshold", ev.get("val_threshold"),
      "train VAL", ev.get("train_val_at_far_1e-3"), "train FAR", ev.get("train_far"))
print("knn", ev.get("knn_accuracy"), "pixel_knn", ev.get("pixel_knn_accuracy"))
print("recall@1", ev.get("recall_at_1"), "map@r", ev.get("map_at_r"), "pixel recall@1",
      ev.get("pixel_recall_at_1"), "pixel map@r", ev.get("pixel_map_at_r"))
sys.exit(0 if ok else 1)
EOF
rc=$?
cat "$tmp/json.out"
check "evaluate JSON: every key, metrics identical to siam-train's, test loss = CSV val_loss" "[ $rc -eq 0 ]"

"$client" evaluate --checkpoint "$tmp/m.ckpt" "${limits[@]}" --data "$data" --no-pixel-knn \
  >"$tmp/eval.txt" 2>/dev/null; rc=$?
acc4=$($py -c "import json; print('%.4f' % json.load(open('$tmp/eval.json'))['accuracy'])")
knn4=$($py -c "import json; print('%.4f' % json.load(open('$tmp/eval.json'))['knn_accuracy'])")
check "evaluate table exits 0" "[ $rc -eq 0 ]"
check "table shows the accuracy of the JSON report ($acc4)" \
  "grep -Eq '^  accuracy \(D <= m/2\) +$acc4 ' '$tmp/eval.txt'"
check "table shows the embedding kNN accuracy ($knn4)" \
  "grep -Eq '^  kNN accuracy \(k=5\), embeddings +$knn4$' '$tmp/eval.txt'"
check "table says the pixel kNN was skipped" "grep -q 'skipped (--no-pixel-knn)' '$tmp/eval.txt'"
r1=$($py -c "import json; print('%.4f' % json.load(open('$tmp/eval.json'))['recall_at_1'])")
mr=$($py -c "import json; print('%.4f' % json.load(open('$tmp/eval.json'))['map_at_r'])")
check "table shows the embedding Recall@1 ($r1) and MAP@R ($mr)" \
  "grep -Eq '^  Recall@1 \(test->test\), embeddings +$r1$' '$tmp/eval.txt' && grep -Eq '^  MAP@R \(test->test\), embeddings +$mr$' '$tmp/eval.txt'"
check "table says the pixel retrieval was skipped" \
  "grep -Eq '^  MAP@R \(test->test\), raw pixels +skipped' '$tmp/eval.txt'"

# raw-pixel retrieval on the first 300 test images against an independent computation: squared
# distances of the pixel bytes as exact integers (the /255 scaling does not change the order),
# ties to the lower index as documented, R = other images of the class
"$client" evaluate --checkpoint "$tmp/m.ckpt" --train-limit 1000 --test-limit 300 --data "$data" \
  --json >"$tmp/eval300.json" 2>/dev/null; rc=$?
check "evaluate --test-limit 300 exits 0" "[ $rc -eq 0 ]"
$py - "$data" "$tmp/eval300.json" >"$tmp/ret.out" 2>&1 <<'EOF'
import gzip, json, os, sys
data, n = sys.argv[1], 300
def read(name, skip, size):
    path = os.path.join(data, name)
    raw = gzip.open(path).read() if os.path.exists(path) else open(path[:-3], "rb").read()
    return raw[skip:skip + size]
px = read("t10k-images-idx3-ubyte.gz", 16, 784 * n)
lab = read("t10k-labels-idx1-ubyte.gz", 8, n)
img = [px[784 * i:784 * (i + 1)] for i in range(n)]
d = [[0] * n for _ in range(n)]
for i in range(n):
    a = img[i]
    for j in range(i + 1, n):
        d[i][j] = d[j][i] = sum((x - y) * (x - y) for x, y in zip(a, img[j]))
hits, aps = 0, []
for q in range(n):
    order = sorted((d[q][j], j) for j in range(n) if j != q)
    hits += lab[order[0][1]] == lab[q]
    r = sum(1 for j in range(n) if j != q and lab[j] == lab[q])
    if r:
        rel, s = 0, 0.0
        for i, (_, j) in enumerate(order[:r], 1):
            if lab[j] == lab[q]:
                rel += 1
                s += rel / i
        aps.append(s / r)
ev = json.load(open(sys.argv[2]))
recall, mapr = hits / n, sum(aps) / len(aps)
print("raw pixels, 300 test images: Recall@1 %.6f (evaluate %.6f), MAP@R %.6f (evaluate %.6f)"
      % (recall, ev["pixel_recall_at_1"], mapr, ev["pixel_map_at_r"]))
# VAL pairs: 100,000 of each kind, or all distinct pairs when fewer (300 test, 1000 training)
def pairs(labels):
    pos = sum(labels.count(c) * (labels.count(c) - 1) // 2 for c in set(labels))
    return min(pos, 100000), min(len(labels) * (len(labels) - 1) // 2 - pos, 100000)
want = pairs(list(lab)) + pairs(list(read("train-labels-idx1-ubyte.gz", 8, 1000)))
got = (ev["val_test_positive_pairs"], ev["val_test_negative_pairs"],
       ev["val_train_positive_pairs"], ev["val_train_negative_pairs"])
print("VAL pairs (test +, test -, train +, train -):", got, "expected", want)
sys.exit(0 if abs(recall - ev["pixel_recall_at_1"]) < 5e-7
         and abs(mapr - ev["pixel_map_at_r"]) < 1e-5 and got == want else 1)
EOF
rc=$?
cat "$tmp/ret.out"
check "raw-pixel Recall@1 and MAP@R equal an independent computation; VAL uses every pair when fewer than 100,000" "[ $rc -eq 0 ]"
for label in "ROC AUC" "accuracy at best threshold" "VAL at FAR = 1e-3" "distance, positive pairs" \
  "distance, negative pairs"; do
  check "table has '$label'" "grep -q '^  $label' '$tmp/eval.txt'"
done
val4=$($py -c "import json; print('%.4f' % json.load(open('$tmp/eval.json'))['val_at_far_1e-3'])")
vt3=$($py -c "import json; print('%.4g' % json.load(open('$tmp/eval.json'))['val_threshold'])")
check "table: VAL ($val4) says its test pairs" \
  "grep -Eq '^  VAL at FAR = 1e-3 +$val4 \(FAR [0-9.]+ over 100000 negative test pairs, 100000 positive\)$' '$tmp/eval.txt'"
check "table: the VAL threshold ($vt3) comes from training pairs" \
  "grep -Eq '^  VAL threshold, from training pairs $vt3 \(FAR [0-9.]+, VAL [0-9.]+ there; 100000 positive \+ 100000 negative\)$' '$tmp/eval.txt'"

# plot data: consistent with the report
p=$tmp/plots
n_pairs=$($py -c "import json; print(json.load(open('$tmp/eval.json'))['test_pairs'])")
check "distances.tsv has one row per test pair ($n_pairs)" \
  "[ \$(grep -vc '^#' '$p/distances.tsv') -eq $n_pairs ]"
check "accuracy recomputed from distances.tsv matches the report" \
  "awk -v a=$acc4 '!/^#/ { n++; r += ((\$1 <= 0.5) == (\$2 == 1)) } END { exit !(n > 0 && (r / n - a)^2 < 1e-8) }' '$p/distances.tsv'"
check "threshold.txt holds m/2 and the best threshold" \
  "grep -q '^half_margin 0.500000$' '$p/threshold.txt' && grep -q '^best_threshold_train ' '$p/threshold.txt'"
n_pred=$(grep -vc '^#' "$p/predictions.tsv")
check "predictions.tsv has 16-24 pairs ($n_pred)" "[ $n_pred -ge 16 ] && [ $n_pred -le 24 ]"
check "predictions.tsv has right and wrong, same and different verdicts" \
  "awk -F'\t' '!/^#/ { k[\$7 \$8]++ } END { exit !(k[\"sameright\"] && k[\"differentright\"] && (k[\"samewrong\"] || k[\"differentwrong\"])) }' '$p/predictions.tsv'"
check "predictions.tsv verdicts follow distance <= 0.5 and outcomes the labels" \
  "awk -F'\t' '!/^#/ { s = (\$6 <= 0.5); if ((\$7 == \"same\") != s || ((s == (\$5 == 1)) ? \"right\" : \"wrong\") != \$8) bad++ } END { exit bad > 0 }' '$p/predictions.tsv'"
check "predictions_images.dat: 28 rows of 56 values in 0..255 per pair" \
  "awk 'NF { rows++; if (NF != 56) bad++; for (i = 1; i <= NF; i++) if (\$i < 0 || \$i > 255) bad++ } END { exit !(bad == 0 && rows == 28 * $n_pred) }' '$p/predictions_images.dat'"
vt=$($py -c "import json; print('%.6f' % json.load(open('$tmp/eval.json'))['val_threshold'])")
check "threshold.txt holds the VAL threshold ($vt)" "grep -q '^val_threshold $vt$' '$p/threshold.txt'"
# the PCA map: what any PCA's coordinates satisfy, checked from the file alone
$py - "$p/embeddings.tsv" >"$tmp/pca.out" 2>&1 <<'EOF'
import sys
ev, names, pts = None, {}, []
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if f[0] == "# explained_variance":
        ev = (float(f[1]), float(f[2]))
    elif f[0] == "# class":
        names[int(f[1])] = f[2]
    elif not line.startswith("#"):
        pts.append((float(f[0]), float(f[1]), int(f[2])))
n = len(pts)
mx, my = sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n
vx = sum((p[0] - mx) ** 2 for p in pts) / (n - 1)
vy = sum((p[1] - my) ** 2 for p in pts) / (n - 1)
cxy = sum((p[0] - mx) * (p[1] - my) for p in pts) / (n - 1)
print("points %d, classes %s, explained %s, mean (%.2g, %.2g), var %.6g %.6g, corr %.2g"
      % (n, sorted(names), ev, mx, my, vx, vy, cxy / (vx * vy) ** 0.5))
ok = (n == 2000 and ev and 0 < ev[1] <= ev[0] and ev[0] + ev[1] <= 1
      and names.get(0) == "T-shirt/top" and names.get(9) == "Ankle boot" and len(names) == 10
      and {p[2] for p in pts} == set(range(10))
      and abs(mx) < 1e-4 * vx ** 0.5 and abs(my) < 1e-4 * vx ** 0.5     # centred
      and abs(cxy) < 1e-3 * (vx * vy) ** 0.5                             # uncorrelated
      and abs(vx / vy - ev[0] / ev[1]) < 1e-3 * ev[0] / ev[1])            # variances' ratio
sys.exit(0 if ok else 1)
EOF
rc=$?
cat "$tmp/pca.out"
check "embeddings.tsv: 2000 points, class names, centred, uncorrelated, variances as explained" \
  "[ $rc -eq 0 ]"
check "no temp files left in the plots dir" "[ -z \"\$(ls '$p' | grep '\.tmp\.')\" ]"

# ---- 2. predict ----------------------------------------------------------------------------------
# a "wrong" pair from predictions.tsv if there is one, else the first
read -r left right tsv_d <<<"$(awk -F'\t' '!/^#/ { if (!f) { f = $3 " " $4 " " $6 } if ($8 == "wrong") { print $3, $4, $6; done = 1; exit } } END { if (!done) print f }' "$p/predictions.tsv")"
"$client" predict --checkpoint "$tmp/m.ckpt" --data "$data" --test-index "$left" "$right" --json \
  >"$tmp/pi.json" 2>"$tmp/pi.err"; rc=$?
check "predict --test-index $left $right exits 0" "[ $rc -eq 0 ]"
$py - "$data" "$left" "$right" "$tmp" <<'EOF'
import gzip, os, sys
data, a, b, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
path = os.path.join(data, "t10k-images-idx3-ubyte.gz")
raw = gzip.open(path).read() if os.path.exists(path) else open(path[:-3], "rb").read()
img = lambda i: raw[16 + 784 * i: 16 + 784 * (i + 1)]
# left as binary P5, right as ASCII P2 with a comment and maxval 255
open(os.path.join(out, "a.pgm"), "wb").write(b"P5\n28 28\n255\n" + img(a))
rows = [" ".join(str(v) for v in img(b)[r * 28:(r + 1) * 28]) for r in range(28)]
open(os.path.join(out, "b.pgm"), "w").write("P2\n# test image %d\n28 28\n255\n%s\n" % (b, "\n".join(rows)))
# the same right image at maxval 65535 (16-bit P5): scaled back to the same bytes
open(os.path.join(out, "b16.pgm"), "wb").write(b"P5 28 28 65535\n" + b"".join(bytes([v, v]) for v in img(b)))
# damaged ones
open(os.path.join(out, "w27.pgm"), "wb").write(b"P5\n27 28\n255\n" + img(a)[:27 * 28])
open(os.path.join(out, "trunc.pgm"), "wb").write((b"P5\n28 28\n255\n" + img(a))[:500])
EOF
"$client" predict --checkpoint "$tmp/m.ckpt" --image "$tmp/a.pgm" "$tmp/b.pgm" --json \
  >"$tmp/pp.json" 2>"$tmp/pp.err"; rc=$?
check "predict --image exits 0" "[ $rc -eq 0 ]"
"$client" predict --checkpoint "$tmp/m.ckpt" --image "$tmp/a.pgm" "$tmp/b16.pgm" --json \
  >"$tmp/pp16.json" 2>/dev/null
dist_of() { $py -c "import json, sys; print(json.load(open(sys.argv[1]))['distance'])" "$1"; }
di=$(dist_of "$tmp/pi.json") dp=$(dist_of "$tmp/pp.json") dp16=$(dist_of "$tmp/pp16.json")
echo "distance: test indices $di, PGM files $dp, 16-bit PGM $dp16, evaluate's $tsv_d"
check "test indices and PGM files give identical distances" "[ -n '$di' ] && [ '$di' = '$dp' ] && [ '$dp' = '$dp16' ]"
check "predict's distance matches evaluate's for the same pair" \
  "awk 'BEGIN { exit !(($di - $tsv_d)^2 < 1e-8) }'"
$py - "$tmp/pi.json" <<'EOF' >"$tmp/pi.check" 2>&1
import json, sys
r = json.load(open(sys.argv[1]))
d, t = r["distance"], r["threshold"]
score = 1 / (1 + (d / t) ** 2)   # siam_score, DESIGN.md
ok = (t == 0.5 and abs(r["score"] - score) < 1e-6 and r["same"] == (d <= t)
      and r["verdict"] == ("same" if d <= t else "different"))
print(r, score)
sys.exit(0 if ok else 1)
EOF
check "predict: score = 1/(1+(D/T)^2), verdict = D <= m/2" "[ $? -eq 0 ]"
"$client" predict --checkpoint "$tmp/m.ckpt" --data "$data" --test-index 7 7 >"$tmp/same.txt" 2>&1
check "identical test images: distance 0, score 1, same" \
  "grep -Eq '^  distance +0$' '$tmp/same.txt' && grep -Eq '^  score +1.0000$' '$tmp/same.txt' && grep -Eq '^  verdict +same$' '$tmp/same.txt'"
"$client" predict --checkpoint "$tmp/m.ckpt" --image "$tmp/b.pgm" "$tmp/b16.pgm" --json >"$tmp/same.json" 2>&1
check "identical PGM images: distance 0 and same" \
  "grep -q '\"distance\": 0,' '$tmp/same.json' && grep -q '\"verdict\": \"same\"' '$tmp/same.json'"
"$client" predict --checkpoint "$tmp/m.ckpt" --image "$tmp/a.pgm" "$tmp/b.pgm" --threshold 1e-6 \
  >"$tmp/thr.txt" 2>&1
check "--threshold sets the verdict's threshold" "grep -Eq '^  threshold +1e-06$' '$tmp/thr.txt'"

# ---- 3. errors -----------------------------------------------------------------------------------
expect_error() { # expect_error DESCRIPTION CODE PATTERN COMMAND...
  local what=$1 code=$2 pattern=$3
  shift 3
  "$@" >"$tmp/err.out" 2>&1
  local rc=$?
  check "$what: exit $code, message has '$pattern'" \
    "[ $rc -eq $code ] && grep -qF -- '$pattern' '$tmp/err.out'" ||
    true
  [ $rc -eq "$code" ] && grep -qF -- "$pattern" "$tmp/err.out" || cat "$tmp/err.out"
}
cp "$tmp/m.ckpt" "$tmp/bad.ckpt"
printf '\x55\x55\x55\x55' | dd of="$tmp/bad.ckpt" bs=1 seek=5000 conv=notrunc 2>/dev/null
expect_error "evaluate, missing checkpoint" 1 "$tmp/none.ckpt" \
  "$client" evaluate --checkpoint "$tmp/none.ckpt" --data "$data"
expect_error "evaluate, corrupt checkpoint" 1 "CRC" \
  "$client" evaluate --checkpoint "$tmp/bad.ckpt" --data "$data"
expect_error "predict, missing checkpoint" 1 "siam-train --checkpoint" \
  "$client" predict --checkpoint "$tmp/none.ckpt" --test-index 1 2
expect_error "predict, corrupt checkpoint" 1 "$tmp/bad.ckpt" \
  "$client" predict --checkpoint "$tmp/bad.ckpt" --test-index 1 2
expect_error "predict, index out of range" 1 "--test-index 10000 is out of range" \
  "$client" predict --checkpoint "$tmp/m.ckpt" --data "$data" --test-index 3 10000
expect_error "predict, 27x28 PGM" 1 "w27.pgm: image is 27x28, expected 28x28" \
  "$client" predict --checkpoint "$tmp/m.ckpt" --image "$tmp/a.pgm" "$tmp/w27.pgm"
expect_error "predict, truncated PGM" 1 "trunc.pgm: truncated" \
  "$client" predict --checkpoint "$tmp/m.ckpt" --image "$tmp/trunc.pgm" "$tmp/a.pgm"
expect_error "predict, missing PGM" 1 "$tmp/none.pgm: cannot open" \
  "$client" predict --checkpoint "$tmp/m.ckpt" --image "$tmp/a.pgm" "$tmp/none.pgm"
expect_error "predict, one value for --test-index" 2 "--test-index needs two values" \
  "$client" predict --checkpoint "$tmp/m.ckpt" --test-index 3
expect_error "predict, both inputs" 2 "exactly one of" \
  "$client" predict --checkpoint "$tmp/m.ckpt" --test-index 1 2 --image "$tmp/a.pgm" "$tmp/b.pgm"
expect_error "predict, no checkpoint" 2 "--checkpoint PATH is required" \
  "$client" predict --test-index 1 2
expect_error "predict, negative index" 2 "is not an image index" \
  "$client" predict --checkpoint "$tmp/m.ckpt" --test-index -1 2
expect_error "evaluate, no checkpoint" 2 "--checkpoint PATH is required" "$client" evaluate
expect_error "evaluate, unknown option" 2 "unknown option" \
  "$client" evaluate --checkpoint "$tmp/m.ckpt" --frobnicate
expect_error "evaluate, plots dir is a file" 1 "is not a directory" \
  "$client" evaluate --checkpoint "$tmp/m.ckpt" "${limits[@]}" --data "$data" --no-pixel-knn \
  --plots-dir "$tmp/m.csv"
for sub in evaluate predict; do
  "$client" "$sub" --help >"$tmp/$sub.help" 2>&1; rc=$?
  check "siam-client $sub --help exits 0" "[ $rc -eq 0 ] && grep -q '^Usage: siam-client $sub' '$tmp/$sub.help'"
done
"$client" evaluate --recipe cnn --help >"$tmp/eval_recipe.help" 2>&1; rc=$?
check "evaluate --recipe cnn takes the recipe's margin" \
  "[ $rc -eq 0 ] && grep -Eq -- '--margin .*\\(default 0.2\\)' '$tmp/eval_recipe.help'"
"$client" evaluate --recipe fastest --checkpoint x >"$tmp/eval_recipe.out" 2>&1; rc=$?
check "evaluate --recipe with an unknown name exits 2 naming the recipes" \
  "[ $rc -eq 2 ] && grep -q 'recipes: pairs|mlp|cnn' '$tmp/eval_recipe.out'"
"$client" --help >"$tmp/client.help" 2>&1
check "siam-client --help mentions both subcommands" \
  "grep -q 'siam-client evaluate' '$tmp/client.help' && grep -q 'siam-client predict' '$tmp/client.help'"

# ---- 4. pictures ---------------------------------------------------------------------------------
if command -v gnuplot >/dev/null 2>&1; then
  bash "$root/scripts/plot.sh" --metrics "$tmp/m.csv" --eval-dir "$p" --out "$tmp/png" \
    >"$tmp/plot.log" 2>&1; rc=$?
  check "plot.sh exits 0" "[ $rc -eq 0 ]" || true
  [ $rc -eq 0 ] || cat "$tmp/plot.log"
  for f in loss distances predictions embeddings; do
    check "$f.png is a PNG of more than 5 KB" \
      "[ \"\$(head -c 8 '$tmp/png/$f.png' | od -An -tx1 | tr -d ' \n')\" = 89504e470d0a1a0a ] && [ \$(stat -c %s '$tmp/png/$f.png') -gt 5000 ]"
  done
  check "no temp files left by plot.sh" "[ -z \"\$(ls -A '$tmp/png' | grep tmp)\" ]"
else
  echo "skip plot.sh: gnuplot is not installed (apt-get install gnuplot-nox)"
fi
PATH=/nonexistent /bin/bash "$root/scripts/plot.sh" --eval-dir "$p" --out "$tmp/png2" >"$tmp/nognu.out" 2>&1; rc=$?
check "plot.sh without gnuplot: exit 1 and how to install it" \
  "[ $rc -eq 1 ] && grep -q 'apt-get install gnuplot-nox' '$tmp/nognu.out'"
bash "$root/scripts/plot.sh" --eval-dir "$tmp/nothing" --out "$tmp/png3" >"$tmp/noeval.out" 2>&1; rc=$?
check "plot.sh with a missing eval dir names the file and the command" \
  "[ $rc -eq 1 ] && grep -q 'distances.tsv is missing' '$tmp/noeval.out' && grep -q 'plots-dir' '$tmp/noeval.out'"

# ---- 5. docs/USAGE.md ----------------------------------------------------------------------------
usage=$root/docs/USAGE.md
for sub in evaluate predict; do
  sed -n "/^## siam-client $sub\$/,/^## /p" "$usage" >"$tmp/section"
  check "docs/USAGE.md has a section '## siam-client $sub'" "[ -s '$tmp/section' ]"
  n=0
  for opt in $(grep -oE '^  --[a-z-]+' "$tmp/$sub.help" | sed 's/^ *//'); do
    n=$((n + 1))
    check "docs/USAGE.md documents siam-client $sub $opt" "grep -q -- '$opt' '$tmp/section'"
  done
  check "siam-client $sub --help lists options for the check to compare (found $n)" "[ $n -ge 3 ]"
done
check "docs/USAGE.md documents scripts/plot.sh" "grep -q 'scripts/plot.sh --metrics' '$usage'"

echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
