#!/usr/bin/env bash
# log_flood_test: bad requests cannot flood siam-server's log. 10,000 bad requests (malformed and
# invalid Train batches, malformed and invalid SyncWeights updates) from Python leave a small,
# bounded number of WARN lines; after the limiter's interval the next bad request's line carries
# "(suppressed K similar messages in the last S s)"; messages over --max-message-mb are refused
# RESOURCE_EXHAUSTED and logged (rate-limited too); at SIGTERM the still pending suppressed counts
# are logged and the server exits 0.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
python_stubs "$tmp"

cat >"$tmp/flood.py" <<'EOF'
"""flood.py STUBS PORT bad N | oversize N: N bad requests as fast as 16 threads send them; prints
the status codes seen."""
import collections, concurrent.futures, sys, grpc
sys.path.insert(0, sys.argv[1])
from siam.v1 import siam_pb2 as pb
port, what, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
ch = grpc.insecure_channel(f"127.0.0.1:{port}",
                           options=[("grpc.max_send_message_length", 64 << 20)])
train = ch.stream_stream("/siam.v1.Siamese/Train")  # raw bytes in and out
sync = ch.unary_unary("/siam.v1.Siamese/SyncWeights")
similarity = ch.unary_unary("/siam.v1.Siamese/Similarity")
bad_batches = [b"\xff\xff\xff",  # not protobuf
               pb.EmbeddingBatch(dim=0, left=[1.0], right=[1.0], labels=[1]).SerializeToString(),
               pb.EmbeddingBatch(dim=2, left=[1.0], right=[1.0, 2.0],
                                 labels=[1]).SerializeToString()]
bad_updates = [b"\xff\xff\xff", pb.WeightsUpdate(worker_id="").SerializeToString(),
               pb.WeightsUpdate(worker_id="w", model_spec="").SerializeToString()]
# 2 MiB of floats: over --max-message-mb 1
big = pb.SimilarityRequest(dim=1, left=[0.5] * (1 << 18), right=[0.5] * (1 << 18)).SerializeToString()

def one(i):
    try:
        if what == "oversize":
            similarity(big, timeout=30)
        elif i % 2 == 0:
            for _ in train(iter([bad_batches[i // 2 % len(bad_batches)]]), timeout=30):
                pass
        else:
            sync(bad_updates[i // 2 % len(bad_updates)], timeout=30)
        return "OK"
    except grpc.RpcError as e:
        return e.code().name

with concurrent.futures.ThreadPoolExecutor(16) as ex:
    codes = collections.Counter(ex.map(one, range(n)))
print(" ".join(f"{k}={v}" for k, v in sorted(codes.items())))
EOF
flood() { "$py" "$tmp/flood.py" "$tmp" "$port" "$@"; }
warns() { grep -c ' WARN ' "$tmp/server.log"; }

start_server server --max-message-mb 1
echo "     server on port $port"
t0=$(date +%s.%N)
flood bad 10000 >"$tmp/bad.out" 2>"$tmp/bad.err"
t1=$(date +%s.%N)
echo "     10,000 bad requests in $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s: $(cat "$tmp/bad.out")"
check "every bad request was refused INVALID_ARGUMENT ($(tail -n 1 "$tmp/bad.err"))" \
  "grep -qx 'INVALID_ARGUMENT=10000' '$tmp/bad.out'"
n1=$(warns)
echo "     WARN lines logged: $n1"
grep ' WARN ' "$tmp/server.log" | head -n 3 | cut -c1-200 | sed 's/^/     | /'
# 5 lines per kind and 10 s; the flood takes a few kinds (Train, SyncWeights) and a few windows
check "10,000 bad requests leave at most 40 WARN lines ($n1)" "[ $n1 -le 40 ]"
check "and at least one (they are not silenced)" "[ $n1 -ge 1 ]"
# each bad Train message ends its stream: the streams' end lines (INFO) are limited too
all=$(wc -l <"$tmp/server.log")
check "the whole log is at most 60 lines ($all)" "[ $all -le 60 ]"

# the interval passes; the next bad request's line reports how many were suppressed
sleep 10.5
flood bad 2 >/dev/null 2>&1
grep 'suppressed' "$tmp/server.log" | cut -c1-240 | sed 's/^/     | /'
check "after the interval, a line reports the suppressed messages" \
  "grep -Eq ' WARN .*\(suppressed [0-9]+ similar messages in the last [0-9.]+ s\)' '$tmp/server.log'"
total=$(grep ' WARN ' "$tmp/server.log" | sed -nE 's/.*\(suppressed ([0-9]+) similar messages.*/\1/p' |
  awk '{s += $1} END {print s + 0}')
n2=$(warns)
check "WARN lines written + suppressed = every bad request ($n2 + $total)" \
  "[ \$(( $n2 + $total )) -ge 10002 ]"

# messages over --max-message-mb: RESOURCE_EXHAUSTED, and now logged (rate-limited)
flood oversize 20 >"$tmp/big.out" 2>"$tmp/big.err"
echo "     20 oversize requests: $(cat "$tmp/big.out")"
check "oversize requests are refused RESOURCE_EXHAUSTED ($(tail -n 1 "$tmp/big.err"))" \
  "grep -qx 'RESOURCE_EXHAUSTED=20' '$tmp/big.out'"
grep 'larger than this server' "$tmp/server.log" | head -n 1 | cut -c1-240 | sed 's/^/     | /'
n_big=$(grep -c 'WARN .*larger than this server.s limit' "$tmp/server.log")
check "an oversize request is logged, naming the limit ($n_big lines)" "[ $n_big -ge 1 ]"
check "20 oversize requests: at most 5 lines" "[ $n_big -le 5 ]"

kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
check "SIGTERM: exit 0 (rc $rc)" "[ $rc -eq 0 ]"
check "at shutdown the pending suppressed oversize refusals are counted in the log" \
  "sed -n '/SIGTERM/,\$p' '$tmp/server.log' | grep -Eq 'suppressed 15 similar messages'"
check "no sanitizer reports" "no_sanitizer_reports '$tmp/server.log'"

echo "$((checks - fails)) of $checks checks passed"
[ $fails -eq 0 ]
