#!/usr/bin/env bash
# set_head_test: the TrainSet head over real sockets, called from Python (Debian's python3-grpcio,
# stubs from protoc --python_out) on a real siam-server --loss batch-hard --margin 0.5:
#   1. two sets on one stream: loss, every gradient and the mining statistics equal a plain-Python
#      brute force of batch-hard (no numpy; Euclidean distance, ties to the lowest index) within
#      1e-4; the step is echoed;
#   2. a degenerate set (one group) is answered OK with loss 0, zero gradients and a note;
#   3. bad input is refused with INVALID_ARGUMENT naming the problem (groups count, a NaN with
#      its index, n = 1), n beyond the limit with RESOURCE_EXHAUSTED naming SIAM_SET_LOSS_MAX_N;
#   4. Status reports the loss, and the server stops cleanly on SIGTERM; --loss rejects a name
#      that is not a set loss.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
python_stubs "$tmp/py"

"$bin/siam-server" --loss triplet >"$tmp/bad.out" 2>&1
rc=$?
check "siam-server --loss triplet exits 2 naming the choices" \
  "[ $rc -eq 2 ] && grep -q 'batch-hard' '$tmp/bad.out'"

start_server server --loss batch-hard --margin 0.5
echo "siam-server listening on 127.0.0.1:$port"

cat >"$tmp/set_head.py" <<'PYEOF'
import importlib.util, math, os, random, sys
import grpc

stubs, addr = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("siam_pb2", os.path.join(stubs, "siam/v1/siam_pb2.py"))
pb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pb)
channel = grpc.insecure_channel(addr)
train_set = channel.stream_stream("/siam.v1.Siamese/TrainSet",
                                  request_serializer=pb.EmbeddingSet.SerializeToString,
                                  response_deserializer=pb.SetResult.FromString)
status = channel.unary_unary("/siam.v1.Siamese/Status",
                             request_serializer=pb.StatusRequest.SerializeToString,
                             response_deserializer=pb.StatusResponse.FromString)
fails = 0

def check(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    fails += 0 if ok else 1

def f32(v):  # the float the wire carries
    import struct
    return struct.unpack("f", struct.pack("f", v))[0]

def batch_hard(x, g, dim, m):
    """Loss, gradient, stats of batch-hard with Euclidean distance, in plain Python doubles."""
    n = len(g)
    row = lambda i: x[i * dim:(i + 1) * dim]
    d = [[math.sqrt(sum((a - b) ** 2 for a, b in zip(row(i), row(j)))) for j in range(n)]
         for i in range(n)]
    grad = [0.0] * (n * dim)
    anchors, terms, hp, hn = [], [], 0.0, 0.0
    for a in range(n):
        pos = [p for p in range(n) if p != a and g[p] == g[a]]
        neg = [q for q in range(n) if g[q] != g[a]]
        if not pos or not neg:
            continue
        p = max(pos, key=lambda j: (d[a][j], -j))  # the hardest, ties to the lowest index
        q = min(neg, key=lambda j: (d[a][j], j))
        anchors.append((a, p, q))
        hp += d[a][p]
        hn += d[a][q]
    A = len(anchors)
    loss, active = 0.0, 0
    for a, p, q in anchors:
        h = d[a][p] - d[a][q] + m
        if h <= 0:
            continue
        active += 1
        loss += h / A
        for k in range(dim):
            up = (x[a * dim + k] - x[p * dim + k]) / d[a][p] if d[a][p] > 0 else 0.0
            un = (x[a * dim + k] - x[q * dim + k]) / d[a][q] if d[a][q] > 0 else 0.0
            grad[a * dim + k] += (up - un) / A
            grad[p * dim + k] -= up / A
            grad[q * dim + k] += un / A
    pos_pairs = sum(1 for i in range(n) for j in range(i + 1, n) if g[i] == g[j])
    return loss, grad, dict(pos=pos_pairs, neg=n * (n - 1) // 2 - pos_pairs, terms=A,
                            active=active, hp=hp / A, hn=hn / A)

rng = random.Random(5)
dim, margin = 4, 0.5
sets = []
for step in (1, 2):
    ids = [rng.randrange(1 << 32) for _ in range(3)]  # fresh random ids per batch, as workers do
    g = [ids[i // 3] for i in range(9)]
    rng.shuffle(g)
    x = [f32(rng.uniform(-1, 1)) for _ in range(9 * dim)]
    sets.append(pb.EmbeddingSet(dim=dim, embeddings=x, groups=g, step=step, worker_id="py-set"))
answers = list(train_set(iter(sets), timeout=30))
check(len(answers) == 2, "two answers on one stream")
for q, r in zip(sets, answers):
    loss, grad, s = batch_hard(list(q.embeddings), list(q.groups), dim, margin)
    err = max(abs(a - b) for a, b in zip(r.grad, grad)) if len(r.grad) == len(grad) else 1e9
    print(f"step {r.step}: loss {r.loss:.6f} (Python {loss:.6f}), max gradient difference {err:.2e}")
    check(r.step == q.step, f"step {q.step} echoed")
    check(abs(r.loss - loss) <= 1e-4, f"step {q.step}: loss equals the brute force within 1e-4")
    check(len(r.grad) == 9 * dim and err <= 1e-4,
          f"step {q.step}: {len(r.grad)} gradients equal the brute force within 1e-4")
    mg = r.mining
    check((mg.positive_pairs, mg.negative_pairs, mg.terms, mg.active) ==
          (s["pos"], s["neg"], s["terms"], s["active"]) and not mg.degenerate and mg.note == "",
          f"step {q.step}: mining counts {mg.positive_pairs} {mg.negative_pairs} {mg.terms} "
          f"{mg.active} (Python {s['pos']} {s['neg']} {s['terms']} {s['active']})")
    check(abs(mg.hardest_positive - s["hp"]) <= 1e-4 and abs(mg.hardest_negative - s["hn"]) <= 1e-4,
          f"step {q.step}: hardest distances {mg.hardest_positive:.5f} {mg.hardest_negative:.5f}")

deg = pb.EmbeddingSet(dim=2, embeddings=[0.5, 1, -2, 3, 0.25, -1], groups=[7, 7, 7], step=3)
r = list(train_set(iter([deg]), timeout=30))[0]
check(r.loss == 0 and all(v == 0 for v in r.grad) and len(r.grad) == 6 and r.mining.degenerate
      and "one group id" in r.mining.note, f"degenerate set: loss 0, note '{r.mining.note}'")

def refused(q, code, text, what):
    try:
        list(train_set(iter([q]), timeout=30))
        check(False, what + ": answered")
    except grpc.RpcError as e:
        check(e.code() == code and text in e.details(), f"{what}: {e.code().name}: {e.details()}")

refused(pb.EmbeddingSet(dim=2, embeddings=[0, 1, 2, 3, 4, 5], groups=[1, 1]),
        grpc.StatusCode.INVALID_ARGUMENT, "embeddings has 6 floats, expected n*dim = 2*2 = 4",
        "groups count != n")
refused(pb.EmbeddingSet(dim=2, embeddings=[0, 1, 2, float("nan"), 4, 5], groups=[1, 1, 2]),
        grpc.StatusCode.INVALID_ARGUMENT, "embeddings[3] is nan (embedding 1, component 1)",
        "NaN named with its index")
refused(pb.EmbeddingSet(dim=2, embeddings=[0, 1], groups=[1]),
        grpc.StatusCode.INVALID_ARGUMENT, "expected n >= 2", "n = 1")
refused(pb.EmbeddingSet(dim=1, embeddings=[0.0] * 4097, groups=[1] * 4097),
        grpc.StatusCode.RESOURCE_EXHAUSTED, "SIAM_SET_LOSS_MAX_N = 4096", "n = 4097")

st = status(pb.StatusRequest(), timeout=10)
check(st.loss == "batch-hard", f"Status loss '{st.loss}'")
check(any(w.worker_id == "py-set" and w.pairs_trained == 18 for w in st.workers),
      "Status lists py-set with its 18 images")
sys.exit(1 if fails else 0)
PYEOF
timeout 120 "$py" "$tmp/set_head.py" "$tmp/py" "127.0.0.1:$port"
check "TrainSet from Python matches the brute force and refuses bad input" "[ $? -eq 0 ]"

kill -TERM "$server_pid"
wait "$server_pid"
check "siam-server exits 0 on SIGTERM" "[ $? -eq 0 ]"
check "the server logged the TrainSet stream" "grep -q 'TrainSet stream of py-set .* ended OK' '$tmp/server.log'"
check "no sanitizer reports" "no_sanitizer_reports '$tmp/server.log'"

echo "$((checks - fails)) passed, $fails failed"
if [ $fails -ne 0 ]; then
  echo "---- server.log"; tail -n 20 "$tmp/server.log"
  exit 1
fi
