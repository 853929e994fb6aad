#!/usr/bin/env bash
# compress_bench_test: siam-bench --suite compress on the real Fashion-MNIST data, small sizes
# (--batch 16, one timed window per figure; about 40 s):
#   1. a fresh mlp: exit 0, every payload (WeightsUpdate, EmbeddingBatch and BatchResult in fp32,
#      fp16, bf16, int8) at levels 1 and 6, each row with a ratio in (0, 1.1] equal to
#      gz_bytes / raw_bytes, positive MB/s both ways and the break-even rate recomputed from
#      them; every message's size as protobuf's encoding of its fields gives it, counted here
#      from the proto (the mlp's 133,504 parameters from its layers);
#   2. --checkpoint of a model written here (in=28x28x1 dense8, every parameter 0.25): its
#      parameters are the ones used (a WeightsUpdate of one repeated value gzips to < 5 %),
#      reported as trained;
#   3. a missing checkpoint is an error naming it; --help lists the suite; no sanitizer report.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin

"$bin/siam-bench" --help >"$tmp/help" 2>&1
check "siam-bench --help lists --suite compress" \
  "grep -q 'local|head|set-head|similarity|search|load|compress' '$tmp/help'"

cat >"$tmp/check.py" <<'PYEOF'
import json, sys
j = json.loads([l for l in open(sys.argv[1]) if l.startswith("{")][0])
want = {k: v for k, v in (a.split("=", 1) for a in sys.argv[2:])}
errors = []
def vlen(v):
    n = 1
    while v >= 128:
        v >>= 7; n += 1
    return n
def ld(n):  # a length-delimited field of number < 16: tag, length, bytes
    return 1 + vlen(n) + n
size = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
scaled = {"fp16", "int8"}
code = {"fp32": 0, "fp16": 1, "bf16": 2, "int8": 3}
n, dim, worker, spec = j["n_params"], j["dim"], j["worker_id"], j["spec"]
blocks = (n + 255) // 256
def weights(e):  # worker_id, model_spec, params | encoding + params_packed + params_scales,
    s = ld(len(worker)) + ld(len(spec.encode())) + (1 + vlen(8570)) + 2 + 2  # samples, step, round
    if e == "fp32":
        return s + ld(4 * n)
    return s + 2 + ld(n * size[e]) + (ld(4 * blocks) if e in scaled else 0)
def batch(B, e):  # dim, left/right | packed + scales, labels, step, worker_id, encoding, omit
    s = 1 + vlen(dim) + ld(B) + 2 + ld(len(worker)) + 2
    if e == "fp32":
        return s + 2 * ld(4 * B * dim)
    return s + 2 + 2 * ld(B * dim * size[e]) + (2 * ld(4 * B) if e in scaled else 0)
def result(B, e):  # step, loss, distances, grad_left | packed + scales, grad_right_omitted
    s = 2 + 5 + ld(4 * B) + 2
    if e == "fp32":
        return s + ld(4 * B * dim)
    return s + ld(B * dim * size[e]) + (ld(4 * B) if e in scaled else 0)
B = int(want["batch"])
expect = {}
for e in size:
    expect["weights." + e] = weights(e)
    expect["batch.b%d.%s" % (B, e)] = batch(B, e)
    expect["result.b%d.%s" % (B, e)] = result(B, e)
got = {}
for r in j["rows"]:
    got.setdefault(r["payload"], set()).add(r["level"])
if got != {p: {1, 6} for p in expect}:
    errors.append("payloads x levels %s, expected %s at levels 1 and 6" % (sorted(got), sorted(expect)))
for k in ("model", "params", "n_params", "dim"):
    if k in want and str(j[k]) != want[k]:
        errors.append("%s is %s, expected %s" % (k, j[k], want[k]))
if j["window_bits"] != 31 or j["mem_level"] != 8:
    errors.append("zlib settings %s/%s, expected gRPC's 31/8" % (j["window_bits"], j["mem_level"]))
for r in j["rows"]:
    name = "%s L%d" % (r["payload"], r["level"])
    if r["payload"] in expect and r["raw_bytes"] != expect[r["payload"]]:
        errors.append("%s: %d bytes, the proto's encoding gives %d" % (name, r["raw_bytes"], expect[r["payload"]]))
    if not (0 < r["ratio"] <= 1.1) or abs(r["ratio"] - r["gz_bytes"] / r["raw_bytes"]) > 1e-4:
        errors.append("%s: ratio %s for %s of %s bytes" % (name, r["ratio"], r["gz_bytes"], r["raw_bytes"]))
    if not (r["compress_mb_s"] > 0 and r["decompress_mb_s"] > 0):
        errors.append("%s: %s / %s MB/s" % (name, r["compress_mb_s"], r["decompress_mb_s"]))
    t = r["raw_bytes"] / (r["compress_mb_s"] * 1e6) + r["raw_bytes"] / (r["decompress_mb_s"] * 1e6)
    be = max(0.0, 8 * (r["raw_bytes"] - r["gz_bytes"]) / t / 1e6)
    if abs(r["break_even_mbit_s"] - be) > 0.01 * be + 0.002:
        errors.append("%s: break-even %s Mbit/s, the figures give %.3f" % (name, r["break_even_mbit_s"], be))
if "max_weights_ratio" in want:
    for r in j["rows"]:
        if r["payload"] == "weights.fp32" and r["ratio"] >= float(want["max_weights_ratio"]):
            errors.append("weights.fp32 L%d: ratio %s, expected < %s (one repeated value)" % (r["level"], r["ratio"], want["max_weights_ratio"]))
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
PYEOF

run_check() { # NAME CHECK-ARGS...: checks $tmp/NAME.out
  local name=$1; shift
  "$py" "$tmp/check.py" "$tmp/$name.out" "$@" >"$tmp/$name.check" 2>&1
  local crc=$?
  [ $crc -eq 0 ] || sed 's/^/     /' "$tmp/$name.check" | head -n 20
  return $crc
}

echo "--- siam-bench --suite compress --batch 16 --reps 1 --json (a fresh mlp)"
"$bin/siam-bench" --suite compress --data "$data" --batch 16 --reps 1 --json >"$tmp/mlp.out" 2>"$tmp/mlp.err"
rc=$?
grep -E '^compress ([a-z]+\.[a-z0-9.]+ +[0-9]+ +6 |model)' "$tmp/mlp.out" | sed 's/^/     /'
[ $rc -eq 0 ] || sed 's/^/     /' "$tmp/mlp.err" | head -n 20
check "siam-bench --suite compress exits 0 (exit $rc)" "[ $rc -eq 0 ]"
check "a table row per payload and level (12 payloads x 2 levels)" \
  "[ \$(grep -cE '^compress (weights|batch|result)\\.[a-z0-9.]+ +[0-9]+ +[16] ' '$tmp/mlp.out') -eq 24 ]"
check "every message's size is the proto's, every ratio in (0, 1.1], rates and break-even agree" \
  "run_check mlp batch=16 model=mlp params=fresh n_params=$((784 * 128 + 128 + 2 * (128 * 128 + 128))) dim=128"

# a checkpoint of a small model whose parameters are all 0.25 (format: lib/nn/siam_checkpoint.h)
"$py" - "$tmp/const.ckpt" <<'PYEOF'
import struct, sys, zlib
spec = b"in=28x28x1 dense8"
n = 784 * 8 + 8
body = b"SIAMCKPT" + struct.pack("<II", 1, len(spec)) + spec + struct.pack("<QQQQ", 7, 0, n, 0)
body += struct.pack("<%df" % n, *([0.25] * n))
open(sys.argv[1], "wb").write(body + struct.pack("<I", zlib.crc32(body)))
PYEOF
echo "--- siam-bench --suite compress --checkpoint const.ckpt --batch 16 --reps 1 --json"
"$bin/siam-bench" --suite compress --data "$data" --checkpoint "$tmp/const.ckpt" --batch 16 --reps 1 \
  --json >"$tmp/ck.out" 2>"$tmp/ck.err"
rc=$?
[ $rc -eq 0 ] || sed 's/^/     /' "$tmp/ck.err" | head -n 20
check "--checkpoint: exits 0 (exit $rc) and says which parameters it used" \
  "[ $rc -eq 0 ] && grep -q '^compress model custom, 6280 parameters (trained: --checkpoint)' '$tmp/ck.out' && grep -q '^compress checkpoint $tmp/const.ckpt\$' '$tmp/ck.out'"
check "--checkpoint: its parameters are used (sizes, ratios; a repeated value gzips to < 5 %)" \
  "run_check ck batch=16 model=custom params=trained n_params=6280 dim=8 max_weights_ratio=0.05"

"$bin/siam-bench" --suite compress --data "$data" --checkpoint "$tmp/nothing.ckpt" >"$tmp/none.out" 2>&1
rc=$?
check "a missing checkpoint: exit 1 (got $rc) naming the file" \
  "[ $rc -eq 1 ] && grep -q 'nothing.ckpt' '$tmp/none.out'"
check "no sanitizer report from siam-bench" "no_sanitizer_reports '$tmp/mlp.err' '$tmp/ck.err' '$tmp/none.out'"

echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
