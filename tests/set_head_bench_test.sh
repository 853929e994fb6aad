#!/usr/bin/env bash
# set_head_bench_test: a smoke run of siam-bench --suite set-head (one timed window per figure,
# growth rows up to n = 1024; about 10 s):
#   1. it exits 0 and reports every row: the loss alone for 5 losses x 2 distances x dim 64 and
#      128 at n = 256, semi-hard at n = 1024, the TrainSet request path and TrainSet over loopback
#      to its in-process server for every loss; each row with calls/s, p50 <= p90 and the terms
#      its loss covers (P x K = 32 x 8: 32,640 pairs, 444,416 triplets, 256 anchors per set);
#   2. --batch beyond SIAM_SET_LOSS_MAX_N is refused (exit 2) naming the limit;
#   3. --help lists the suite; no sanitizer report.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin

"$bin/siam-bench" --help >"$tmp/help" 2>&1
check "siam-bench --help lists --suite set-head" "grep -q 'local|head|set-head|similarity|search|load|compress' '$tmp/help'"

echo "--- siam-bench --suite set-head --reps 1 --batch 1024 --json"
"$bin/siam-bench" --suite set-head --reps 1 --batch 1024 --json >"$tmp/out" 2>"$tmp/err"
rc=$?
grep -E '\.(calls|p50) ' "$tmp/out" | sed 's/^/     /'
[ $rc -eq 0 ] || sed 's/^/     /' "$tmp/err" | head -n 20
check "siam-bench --suite set-head exits 0 (exit $rc)" "[ $rc -eq 0 ]"
grep '^{' "$tmp/out" >"$tmp/json"
check "one 'set-head NAME VALUE UNIT' line per figure (6 per row, 31 rows, 2 about the limit)" \
  "[ \$(grep -cE '^set-head [a-z0-9._-]+ [0-9.]+ [a-zA-Z/]+\$' '$tmp/out') -eq 188 ]"
check "the limit and its workspace are reported" \
  "grep -q '^set-head max_n 4096 embeddings' '$tmp/out' && grep -q '^set-head workspace.n4096 128.0 MiB' '$tmp/out'"

cat >"$tmp/check.py" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
rows = j["rows"]
want_terms = {"contrastive": ("pairs", 32640), "batch-all": ("triplets", 444416),
              "semi-hard": ("triplets", 444416), "batch-hard": ("anchors", 256),
              "batch-hard-soft": ("anchors", 256)}
errors = []
def key(r):
    return (r["path"], r["loss"], r["distance"], r["n"], r["dim"])
keys = [key(r) for r in rows]
expect = [("loss", l, d, 256, dim) for dim in (64, 128) for l in want_terms for d in ("euclidean", "squared")]
expect += [("loss", "semi-hard", "euclidean", 1024, 64)]
expect += [(p, l, "euclidean", 256, 64) for p in ("request", "rpc") for l in want_terms]
if sorted(keys) != sorted(expect):
    errors.append("rows %s, expected %s" % (sorted(set(keys) ^ set(expect)), len(expect)))
if j["max_n"] != 4096 or j["workspace_bytes_at_max_n"] != 2 * 4096 * 4096 * 4:
    errors.append("limit %s / %s" % (j["max_n"], j["workspace_bytes_at_max_n"]))
for r in rows:
    term, count = want_terms[r["loss"]]
    if r["n"] == 1024:
        count = 1024 * 7 * (1024 - 8)  # K = 8: 7 positives and 1016 negatives per anchor
    if r["term"] != term or r["terms_per_call"] != count:
        errors.append("%s: %s %s per call, expected %s %s" % (key(r), r["terms_per_call"], r["term"], count, term))
    if not (r["calls_per_s"] > 0 and 0 < r["p50_us"] <= r["p90_us"]):
        errors.append("%s: %s calls/s, p50 %s p90 %s us" % (key(r), r["calls_per_s"], r["p50_us"], r["p90_us"]))
    if abs(r["images_per_s"] - r["calls_per_s"] * r["n"]) > 0.01 * r["images_per_s"] + 1:
        errors.append("%s: images/s %s" % (key(r), r["images_per_s"]))
    if not 0 < r["active_fraction"] <= 1:
        errors.append("%s: active %s" % (key(r), r["active_fraction"]))
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
PYEOF
"$py" "$tmp/check.py" "$tmp/json" >"$tmp/check.out" 2>&1
crc=$?
[ $crc -eq 0 ] || sed 's/^/     /' "$tmp/check.out" | head -n 20
check "every row measured, with the terms of a 32 x 8 set (JSON)" "[ $crc -eq 0 ]"
check "no sanitizer report from siam-bench" "no_sanitizer_reports '$tmp/err'"

"$bin/siam-bench" --suite set-head --batch 4097 >"$tmp/big.out" 2>&1
rc=$?
check "--batch 4097 is refused (exit 2, got $rc) naming SIAM_SET_LOSS_MAX_N = 4096" \
  "[ $rc -eq 2 ] && grep -q 'SIAM_SET_LOSS_MAX_N = 4096' '$tmp/big.out'"

echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
