#!/usr/bin/env bash
# join_cancel_test: a SyncWeights join whose caller gave up does not count towards --min-workers.
# A real siam-server with --min-workers 2; a Python caller (Debian's grpcio) joins with a short
# deadline and gives up; then one live worker joins: it must NOT be released alone (its join
# waits, Status says 1 of 2), until a second live worker joins, and then both are released.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
python_stubs "$tmp"
cat >"$tmp/join.py" <<'EOF'
# join.py PORT MODE: MODE "quit" joins with a 1 s deadline and gives up; "one" joins with a 4 s
# deadline and prints its status code; "two" joins two workers at once (60 s deadline) and
# prints both codes; "status" prints joined_workers.
import sys, threading
import grpc
sys.path.insert(0, sys.argv[3])
from siam.v1 import siam_pb2
port, mode = sys.argv[1], sys.argv[2]
ch = grpc.insecure_channel("127.0.0.1:" + port)
sync = ch.unary_unary("/siam.v1.Siamese/SyncWeights",
                      request_serializer=siam_pb2.WeightsUpdate.SerializeToString,
                      response_deserializer=siam_pb2.GlobalWeights.FromString)
def join(name, timeout):
    u = siam_pb2.WeightsUpdate(worker_id=name, model_spec="in=1x2x2 dense1",
                               params=[0.1, 0.2, 0.3, 0.4, 0.5], samples=0, round=0)
    try:
        sync(u, timeout=timeout)
        return "OK"
    except grpc.RpcError as e:
        return e.code().name
if mode == "quit":
    print(join("quitter", 1.0))
elif mode == "one":
    print(join("live-1", 4.0))
elif mode == "two":
    out = {}
    ts = [threading.Thread(target=lambda n=n: out.__setitem__(n, join(n, 60.0)))
          for n in ("live-1", "live-2")]
    [t.start() for t in ts]
    [t.join() for t in ts]
    print(out["live-1"], out["live-2"])
else:
    st = ch.unary_unary("/siam.v1.Siamese/Status",
                        request_serializer=siam_pb2.StatusRequest.SerializeToString,
                        response_deserializer=siam_pb2.StatusResponse.FromString)
    print(st(siam_pb2.StatusRequest(), timeout=5).joined_workers)
EOF
join() { "$py" "$tmp/join.py" "$port" "$1" "$tmp" 2>>"$tmp/py.err"; }

start_server server --min-workers 2 --sync-timeout 5
quit=$(join quit)
check "the quitter's join ends DEADLINE_EXCEEDED (got $quit)" "[ '$quit' = DEADLINE_EXCEEDED ]"
sleep 0.5 # the server learns of the cancellation on its own completion queue
one=$(join one)
check "one live worker after a quitter is not released alone (got $one)" \
  "[ '$one' = DEADLINE_EXCEEDED ]"
check "the server logged that the quitter gave up its join" \
  "grep -q 'worker quitter gave up its join' '$tmp/server.log'"
joined=$(join status)
check "Status counts no join whose caller gave up (joined_workers $joined)" "[ '$joined' = 0 ]"
two=$(join two)
check "two live workers release each other (got $two)" "[ '$two' = 'OK OK' ]"
kill -TERM "$server_pid"; wait "$server_pid"; src=$?
check "the server stops cleanly (exit $src)" "[ $src -eq 0 ]"
check "no sanitizer reports" "no_sanitizer_reports '$tmp/server.log'"
[ $fails -eq 0 ] || { echo "--- server log:"; tail -n 30 "$tmp/server.log"; cat "$tmp/py.err"; }
echo "$((checks - fails)) of $checks checks passed"
[ $fails -eq 0 ]
