#!/usr/bin/env bash
# checkpoint_fail_test: siam-server whose checkpoints cannot be written. A round's checkpoint is
# written, then the file system under --checkpoint stops taking writes; the next periodic
# checkpoint fails and Status reports it (the newest checkpoint written, the failure's round,
# time and message, the count); on SIGTERM the shutdown checkpoint fails too and siam-server
# exits non-zero with a last log line naming the path and the fix.
#
# How writes are made to fail, the first that works here (exit 77 = skipped when none does):
#   tmpfs   a 256 KiB tmpfs mounted on the checkpoint directory, filled up after the first
#           checkpoint: ENOSPC, a disk really full (needs mount, i.e. root with CAP_SYS_ADMIN)
#   chattr  the checkpoint directory made immutable (chattr +i; needs CAP_LINUX_IMMUTABLE and a
#           file system with the attribute, e.g. ext4, not overlayfs or tmpfs)
#   rmdir   the checkpoint directory removed after the first checkpoint: ENOENT
# Rounds are driven from Python (SyncWeights with a tiny model, one worker: each update closes a
# round at once), so the test needs no data set.
set -uo pipefail
bin=${SIAM_BIN_DIR:?}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
source "$(dirname "$0")/e2e_lib.sh"
e2e_begin
ckdir=$tmp/ckpt
mkdir -p "$ckdir"
mechanism=""
cleanup_mechanism() {
  case "$mechanism" in
    tmpfs) umount "$ckdir" 2>/dev/null ;;
    chattr) chattr -i "$ckdir" 2>/dev/null ;;
  esac
}
trap 'cleanup_mechanism; e2e_cleanup' EXIT

python_stubs "$tmp"

# One SyncWeights update (round ROUND) or a Status, printed as "key=value" lines.
cat >"$tmp/call.py" <<'EOF'
import sys, grpc
sys.path.insert(0, sys.argv[1])
from siam.v1 import siam_pb2 as pb
ch = grpc.insecure_channel(f"127.0.0.1:{sys.argv[2]}")
if sys.argv[3] == "sync":
    sync = ch.unary_unary("/siam.v1.Siamese/SyncWeights",
                          request_serializer=pb.WeightsUpdate.SerializeToString,
                          response_deserializer=pb.GlobalWeights.FromString)
    status = ch.unary_unary("/siam.v1.Siamese/Status",
                            request_serializer=pb.StatusRequest.SerializeToString,
                            response_deserializer=pb.StatusResponse.FromString)
    spec = status(pb.StatusRequest(), timeout=10).model_spec
    n = 28 * 28 * 4 + 4  # in=28x28x1 dense4
    g = sync(pb.WeightsUpdate(worker_id="ck-w", model_spec=spec, params=[0.01] * n, samples=10,
                              step=int(sys.argv[4]), round=int(sys.argv[4])), timeout=30)
    print(f"round={g.round}")
else:
    status = ch.unary_unary("/siam.v1.Siamese/Status",
                            request_serializer=pb.StatusRequest.SerializeToString,
                            response_deserializer=pb.StatusResponse.FromString)
    s = status(pb.StatusRequest(), timeout=10)
    for f in ("round", "checkpoint_path", "checkpoint_round", "checkpoint_unix_time",
              "checkpoint_failures", "checkpoint_failed_round", "checkpoint_failed_unix_time",
              "checkpoint_error"):
        print(f"{f}={getattr(s, f)}")
EOF
call() { "$py" "$tmp/call.py" "$tmp" "$port" "$@"; }
field() { sed -n "s/^$1=//p" "$2"; }

# ---- which failure mechanism works here ----
# each is tried on a scratch directory first: it counts only if a write there then really fails
probe=$tmp/probe
try_tmpfs() {
  mkdir -p "$probe" && mount -t tmpfs -o size=256k tmpfs "$probe" 2>/dev/null || return 1
  dd if=/dev/zero of="$probe/fill" bs=4k 2>/dev/null
  local ok=1
  if ! dd if=/dev/zero of="$probe/x" bs=4k count=1 conv=fsync 2>/dev/null; then ok=0; fi
  umount "$probe"
  return $ok
}
try_chattr() {
  mkdir -p "$probe" && chattr +i "$probe" 2>/dev/null || return 1
  local ok=1
  if ! touch "$probe/x" 2>/dev/null; then ok=0; fi
  chattr -i "$probe" 2>/dev/null
  rm -f "$probe/x"
  return $ok
}
# CHECKPOINT_FAIL_MECHANISM=tmpfs|chattr|rmdir picks one (to try each by hand)
want=${CHECKPOINT_FAIL_MECHANISM:-}
if [ -z "$want" -o "$want" = tmpfs ] && try_tmpfs; then
  mechanism=tmpfs
  mount -t tmpfs -o size=256k tmpfs "$ckdir" || { echo "FAIL mount"; exit 1; }
elif [ -z "$want" -o "$want" = chattr ] && try_chattr; then
  mechanism=chattr
elif [ -z "$want" -o "$want" = rmdir ]; then
  mechanism=rmdir
else
  echo "SKIP $want cannot make writes fail here"
  exit 77
fi
echo "     failure mechanism: $mechanism"
break_writes() {
  case "$mechanism" in
    tmpfs) dd if=/dev/zero of="$ckdir/fill" bs=4k 2>/dev/null; true ;;
    chattr) chattr +i "$ckdir" ;;
    rmdir) rm -rf "$ckdir" ;;
  esac
  # the mechanism must really stop writes, or the test proves nothing
  if dd if=/dev/zero of="$ckdir/probe" bs=4k count=1 conv=fsync 2>/dev/null; then
    rm -f "$ckdir/probe"
    echo "SKIP writes under $ckdir still succeed with $mechanism"
    exit 77
  fi
  rm -f "$ckdir/probe" 2>/dev/null
}

# ---- a checkpoint written, then one that fails ----
ck=$ckdir/global.ckpt
start_server server --model 'in=28x28x1 dense4' --checkpoint "$ck" --checkpoint-every 1 \
  --sync-timeout 5
echo "     server on port $port"
call sync 0 >"$tmp/sync1.out" 2>"$tmp/sync1.err"
check "round 1 closes ($(cat "$tmp/sync1.out" "$tmp/sync1.err" | tail -n 1))" \
  "grep -q '^round=1$' '$tmp/sync1.out'"
check "round 1 is checkpointed" "grep -q 'checkpoint of round 1 (periodic) written' '$tmp/server.log'"
call status >"$tmp/st1.out" 2>"$tmp/st1.err"
check "Status: the newest checkpoint is $ck, round 1 ($(tail -n 1 "$tmp/st1.err"))" \
  "[ \"\$(field checkpoint_path '$tmp/st1.out')\" = '$ck' ] &&
   [ \"\$(field checkpoint_round '$tmp/st1.out')\" = 1 ]"
check "Status: its time is now (Unix seconds)" \
  "awk -v t=\"\$(field checkpoint_unix_time '$tmp/st1.out')\" -v now=$(date +%s) \
     'BEGIN{exit !(t > now - 60 && t < now + 60)}'"
check "Status: no failures yet" \
  "[ \"\$(field checkpoint_failures '$tmp/st1.out')\" = 0 ] &&
   [ -z \"\$(field checkpoint_error '$tmp/st1.out')\" ]"

break_writes
call sync 1 >"$tmp/sync2.out" 2>"$tmp/sync2.err"
check "round 2 closes although its checkpoint cannot be written" "grep -q '^round=2$' '$tmp/sync2.out'"
check "the periodic checkpoint's failure is logged" \
  "grep -q 'ERROR.*checkpoint of round 2 (periodic) not written' '$tmp/server.log'"
call status >"$tmp/st2.out" 2>"$tmp/st2.err"
cat "$tmp/st2.out" | sed 's/^/     status: /'
check "Status: 1 failure, of round 2, with its message naming the path" \
  "[ \"\$(field checkpoint_failures '$tmp/st2.out')\" = 1 ] &&
   [ \"\$(field checkpoint_failed_round '$tmp/st2.out')\" = 2 ] &&
   field checkpoint_error '$tmp/st2.out' | grep -q '$ck'"
check "Status: the failure's time is now" \
  "awk -v t=\"\$(field checkpoint_failed_unix_time '$tmp/st2.out')\" -v now=$(date +%s) \
     'BEGIN{exit !(t > now - 60 && t < now + 60)}'"
check "Status: the newest checkpoint written is still round 1" \
  "[ \"\$(field checkpoint_round '$tmp/st2.out')\" = 1 ] &&
   [ \"\$(field checkpoint_path '$tmp/st2.out')\" = '$ck' ]"

"$py" "$root/tests/raw_client.py" --server "127.0.0.1:$port" --stubs "$tmp" \
  >"$tmp/demo.out" 2>&1
grep '^checkpoint' "$tmp/demo.out" | sed 's/^/     example: /'
check "the Python example prints the newest checkpoint and the failure" \
  "grep -q '^checkpoint: round 1 written to $ck at ' '$tmp/demo.out' &&
   grep -q '^checkpoint failures: 1; the newest, of round 2 at .*: $ck' '$tmp/demo.out'"

# ---- SIGTERM: the shutdown checkpoint fails, the exit status says so ----
kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
echo "     siam-server exited $rc; its last lines:"
tail -n 3 "$tmp/server.log" | sed 's/^/     | /'
check "SIGTERM with the model unsaved: siam-server exits non-zero (rc $rc)" "[ $rc -ne 0 ]"
check "the shutdown checkpoint's failure is logged" \
  "grep -q 'ERROR.*checkpoint of round 2 (shutdown) not written' '$tmp/server.log'"
last=$(tail -n 1 "$tmp/server.log")
check "the last log line is an ERROR naming the path, the round lost and the fix" \
  "echo \"\$last\" | grep -q 'ERROR' && echo \"\$last\" | grep -qF '$ck' &&
   echo \"\$last\" | grep -q 'round 2 is lost' && echo \"\$last\" | grep -q 'Fix: '"
if [ "$mechanism" != rmdir ]; then # the file of round 1 is still there to resume from
  check "... and how to restart from round 1" \
    "echo \"\$last\" | grep -qF 'still holds round 1, the newest written: restart with --resume $ck'"
fi

# ---- and a server whose checkpoints are written exits 0 ----
cleanup_mechanism
mechanism=""
ok_ck=$tmp/ok.ckpt
start_server ok --model 'in=28x28x1 dense4' --checkpoint "$ok_ck" --checkpoint-every 1
call sync 0 >/dev/null 2>&1
kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
check "with its checkpoints written, siam-server exits 0 on SIGTERM (rc $rc)" "[ $rc -eq 0 ]"

check "no sanitizer reports (a sanitizer's abort would also exit non-zero)" \
  "no_sanitizer_reports '$tmp/server.log' '$tmp/ok.log'"

echo "$((checks - fails)) of $checks checks passed"
[ $fails -eq 0 ]
