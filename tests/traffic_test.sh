#!/usr/bin/env bash
# traffic_test: the bytes on the record (siam_rpc.h "traffic") against sizes computed apart.
# A real siam-server and one siam-client (mlp, batch 128, 2 small epochs, averaging every 3
# steps) on 127.0.0.1; then, in Python with Debian's protobuf (not protobuf-c), every message the
# worker must have sent and received is rebuilt with the same field values and serialized:
#   1. Train: one EmbeddingBatch and one BatchResult per step (batch sizes from the training pairs
#      and the batch size, steps numbered on from 0 across epochs): the worker's report
#      (traffic.Train) counts exactly their messages and bytes, both ways;
#   2. SyncWeights: the join and every report (step, samples and rounds from the worker's log,
#      the parameter count from the model spec): exact too, both ways;
#   3. the server's Status (traffic, new fields 30 and 31) reports the same bytes for Train and
#      SyncWeights as the worker, the other way round, and counts this Status call as it arrives;
#   4. the server's shutdown lines and the worker's own log lines agree with the report;
#   5. --metrics: bytes_sent and bytes_received grow with the epochs and the last epoch's equal
#      the report's totals; bytes per pair = Train bytes / training pairs.
# What is counted: serialized protobuf messages (no gRPC prefix, HTTP/2 or TCP/IP bytes).
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
source "$(dirname "$0")/e2e_lib.sh"
if [ ! -e "$data/train-images-idx3-ubyte.gz" ] && [ ! -e "$data/train-images-idx3-ubyte" ]; then
  echo "SKIP: no Fashion-MNIST in $data"
  exit 77
fi
e2e_begin
python_stubs "$tmp/py"

start_server server
echo "siam-server on 127.0.0.1:$port"
"$bin/siam-client" --server "127.0.0.1:$port" --model mlp --batch-size 128 --epochs 2 \
  --train-limit 1000 --test-limit 200 --threads 1 --data "$data" --sync-every 3 \
  --worker-id traffic-w0 --metrics "$tmp/metrics.csv" --json >"$tmp/report.json" 2>"$tmp/client.log"
rc=$?
check "siam-client exits 0 (rc $rc)" "[ $rc -eq 0 ]"
[ $rc -eq 0 ] || { tail -5 "$tmp/client.log"; exit 1; }

# Python: rebuild every message, compare with the report, the metrics and the server's Status
PYTHONPATH="$tmp/py" /usr/bin/python3 - "$tmp/report.json" "$tmp/client.log" "$tmp/metrics.csv" \
  "127.0.0.1:$port" >"$tmp/py.out" 2>&1 <<'EOF'
import csv, json, math, re, sys
import grpc
from siam.v1 import siam_pb2

report_path, log_path, metrics_path, target = sys.argv[1:5]
rep = json.load(open(report_path))
log = open(log_path).read()
fails = 0
def check(what, ok):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    fails += 0 if ok else 1

worker_id, dim = "traffic-w0", 128
pairs, batch, epochs, spec = rep["train_pairs"], rep["batch_size"], rep["epochs"], rep["spec"]

# 1. Train: steps numbered from 0 on the worker's stream, epoch after epoch
up = down = n = 0
step = 0
for _ in range(epochs):
    for start in range(0, pairs, batch):
        b = min(batch, pairs - start)
        # siam-client asks for grad_right to be left out (it is -grad_left), and the server does
        req = siam_pb2.EmbeddingBatch(dim=dim, left=[0.5] * (b * dim), right=[0.5] * (b * dim),
                                      labels=[1] * b, step=step, worker_id=worker_id,
                                      omit_grad_right=True)
        # any nonzero loss: a float field takes 5 bytes unless it is exactly 0
        ans = siam_pb2.BatchResult(step=step, loss=1.0, distances=[0.5] * b,
                                   grad_left=[0.5] * (b * dim), grad_right_omitted=True)
        up += req.ByteSize(); down += ans.ByteSize(); n += 1; step += 1
t = rep["traffic"]["Train"]
print(f"Train: {n} batches, expected {up} bytes up, {down} down; worker reports "
      f"{t['bytes_sent']} and {t['bytes_received']}")
check("Train: one stream, every batch and answer counted",
      t["calls"] == 1 and t["messages_sent"] == n and t["messages_received"] == n)
check("Train: bytes sent = the EmbeddingBatch messages serialized by Python", t["bytes_sent"] == up)
check("Train: bytes received = the BatchResult messages", t["bytes_received"] == down)
check("bytes_per_pair_up/down = Train bytes / training pairs",
      abs(rep["bytes_per_pair_up"] - up / (pairs * epochs)) < 0.06 and
      abs(rep["bytes_per_pair_down"] - down / (pairs * epochs)) < 0.06)

# 2. SyncWeights: the parameters of the dense layers of the spec, then the log's rounds
n_params, fan_in = 0, 784
for tok in spec.split():
    m = re.fullmatch(r"dense(\d+)", tok)
    if m:
        k = int(m.group(1)); n_params += fan_in * k + k; fan_in = k
params = [0.5] * n_params
join = re.search(r"joined at round (\d+)", log)
reports = re.findall(r"step (\d+): round (\d+) adopted \((\d+) worker\(s\), (\d+) samples", log)
check(f"the log shows the join and {len(reports)} rounds", join is not None and len(reports) > 2)
rnd = int(join.group(1)) if join else 0
sync_up = siam_pb2.WeightsUpdate(worker_id=worker_id, model_spec=spec, params=params).ByteSize()
# the join's answer: the global model and its round; the last round's workers and samples (none)
sync_down = siam_pb2.GlobalWeights(round=rnd, params=params, model_spec=spec).ByteSize()
for s, r, w, smp in reports:
    sync_up += siam_pb2.WeightsUpdate(worker_id=worker_id, model_spec=spec, params=params,
                                      samples=int(smp), step=int(s), round=rnd).ByteSize()
    rnd = int(r)
    sync_down += siam_pb2.GlobalWeights(round=rnd, params=params, model_spec=spec,
                                        workers=int(w), samples=int(smp)).ByteSize()
t = rep["traffic"]["SyncWeights"]
print(f"SyncWeights: {1 + len(reports)} calls of {n_params} parameters, expected {sync_up} bytes "
      f"up, {sync_down} down; worker reports {t['bytes_sent']} and {t['bytes_received']}")
check("SyncWeights: one call per join and round",
      t["calls"] == 1 + len(reports) and t["messages_sent"] == t["calls"] == t["messages_received"])
check("SyncWeights: bytes sent = the WeightsUpdate messages", t["bytes_sent"] == sync_up)
check("SyncWeights: bytes received = the GlobalWeights messages", t["bytes_received"] == sync_down)
check("Status: one call, an empty request",
      rep["traffic"]["Status"]["calls"] == 1 and rep["traffic"]["Status"]["bytes_sent"] == 0)
total_up = sum(v["bytes_sent"] for v in rep["traffic"].values())
total_down = sum(v["bytes_received"] for v in rep["traffic"].values())
check("bytes_sent_total and bytes_received_total sum the RPCs",
      rep["bytes_sent_total"] == total_up and rep["bytes_received_total"] == total_down)

# 3. the server's Status, seen from its side
with grpc.insecure_channel(target) as ch:
    call = ch.unary_unary("/siam.v1.Siamese/Status",
                          request_serializer=siam_pb2.StatusRequest.SerializeToString,
                          response_deserializer=siam_pb2.StatusResponse.FromString)
    st = call(siam_pb2.StatusRequest(), timeout=10)
srv = {r.method.rsplit("/", 1)[-1]: r for r in st.traffic}
print("server Status traffic: " + ", ".join(
    f"{k} {r.calls} calls {r.bytes_received}/{r.bytes_sent} bytes in/out" for k, r in srv.items()))
for k in ("Train", "SyncWeights"):
    w, s = rep["traffic"][k], srv.get(k)
    check(f"Status: the server received what the worker sent on {k}, and the other way round",
          s is not None and s.calls == w["calls"] and s.messages_received == w["messages_sent"] and
          s.bytes_received == w["bytes_sent"] and s.messages_sent == w["messages_received"] and
          s.bytes_sent == w["bytes_received"])
s = srv.get("Status")
check("Status: counts the worker's call and this one (answered after the count is taken)",
      s is not None and s.calls == 2 and s.messages_received == 2 and s.messages_sent == 1)
check(f"Status: traffic_seconds {st.traffic_seconds:.2f} > 0", st.traffic_seconds > 0)

# 4. the worker's log lines
for k, w in rep["traffic"].items():
    line = (f"traffic /siam.v1.Siamese/{k}: calls={w['calls']} messages_sent={w['messages_sent']} "
            f"bytes_sent={w['bytes_sent']} messages_received={w['messages_received']} "
            f"bytes_received={w['bytes_received']}")
    check(f"the worker logs {k}'s traffic as its report has it", line in log)

# 5. the metrics' byte columns
rows = [r for r in csv.DictReader(open(metrics_path)) if r["kind"] == "epoch"]
check("metrics: one epoch row per epoch with bytes", len(rows) == epochs and
      all(r["bytes_sent"] and r["bytes_received"] for r in rows))
check("metrics: the bytes grow with the epochs",
      all(int(a["bytes_sent"]) < int(b["bytes_sent"]) for a, b in zip(rows, rows[1:])))
check("metrics: the last epoch's bytes are the report's totals",
      int(rows[-1]["bytes_sent"]) == rep["bytes_sent_total"] and
      int(rows[-1]["bytes_received"]) == rep["bytes_received_total"])
print(f"python: {fails} failure(s)")
sys.exit(1 if fails else 0)
EOF
prc=$?
cat "$tmp/py.out"
checks=$((checks + $(grep -c '^ok \|^FAIL' "$tmp/py.out")))
fails=$((fails + $(grep -c '^FAIL' "$tmp/py.out")))
[ $prc -eq 0 ] || grep -q '^FAIL' "$tmp/py.out" || { echo "FAIL the Python checks did not run (rc $prc)"; fails=$((fails + 1)); }

# the server's own lines at shutdown
kill -TERM "$server_pid"
wait "$server_pid"
src=$?
check "siam-server exits 0 on SIGTERM (rc $src)" "[ $src -eq 0 ]"
train_up=$(sed -n 's/.*"Train": {[^}]*"bytes_sent": \([0-9]*\).*/\1/p' "$tmp/report.json")
train_down=$(sed -n 's/.*"Train": {[^}]*"bytes_received": \([0-9]*\).*/\1/p' "$tmp/report.json")
check "the server logs Train's traffic at shutdown (received $train_up, sent $train_down)" \
  "grep -q 'traffic /siam.v1.Siamese/Train: calls=1 messages_received=[0-9]* bytes_received=$train_up messages_sent=[0-9]* bytes_sent=$train_down' '$tmp/server.log'"
check "no sanitizer reports" "no_sanitizer_reports '$tmp/server.log' '$tmp/client.log'"
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
