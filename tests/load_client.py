#!/usr/bin/python3
"""Callers for tests/load_test.sh that siam-bench is not: a greedy Train client, a prompt-answer
probe, and messages just over the size limit. Debian's python3-grpcio and python3-protobuf; the
message classes come from protoc --python_out (pass the directory with --stubs).

    load_client.py greedy --server ADDR --stubs DIR [--streams N] [--batch B] [--dim D]
        opens N Train streams whose request generators yield batches forever and never reads an
        answer. Prints "sent TOTAL MIN MAX" (messages taken by gRPC, all streams, and the least
        and most per stream) every second until killed. HTTP/2 flow control is what stops it.

    load_client.py probe --server ADDR --stubs DIR [--seconds S] [--pid PID]
        a well-behaved caller: Status and a 10-pair Similarity back to back for S seconds, each
        with a 5 s deadline. Prints one JSON line: calls, failures, latency p50/max, the
        server's global_step (batches answered) over time and how long it has not moved, and
        with --pid the server's RSS (VmRSS) sampled at every call. Exit 1 if a call failed.

    load_client.py oversize --server ADDR --stubs DIR --limit-mb MB
        a Train batch and a Similarity request each just over MB MiB: both must be refused
        RESOURCE_EXHAUSTED with a message naming the limit in bytes and --max-message-mb; then
        Status must still answer. One line per check; exit 1 if one fails.
"""

import argparse
import importlib.util
import json
import os
import random
import sys
import time

import grpc

TRAIN = "/siam.v1.Siamese/Train"
SIMILARITY = "/siam.v1.Siamese/Similarity"
STATUS = "/siam.v1.Siamese/Status"


def load_stubs(stubs):
    path = os.path.join(stubs, "siam", "v1", "siam_pb2.py")
    spec = importlib.util.spec_from_file_location("siam_pb2", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def raw(channel, method, stream=False):
    """A callable for method that sends and returns bytes (no (de)serialisation)."""
    make = channel.stream_stream if stream else channel.unary_unary
    return make(method, request_serializer=None, response_deserializer=None)


def batch_bytes(pb, rng, pairs, dim, worker):
    n = pairs * dim
    return pb.EmbeddingBatch(dim=dim, left=[rng.uniform(-0.1, 0.1) for _ in range(n)],
                             right=[rng.uniform(-0.1, 0.1) for _ in range(n)],
                             labels=[rng.randrange(2) for _ in range(pairs)],
                             worker_id=worker).SerializeToString()


def greedy(args, pb):
    rng = random.Random(7)
    channel = grpc.insecure_channel(args.server)
    train = raw(channel, TRAIN, stream=True)
    sent = [0] * args.streams

    def requests(i, msg):
        while True:
            sent[i] += 1
            yield msg

    # the call objects must stay referenced, or the streams are cancelled; their answers are
    # never asked for
    calls = [train(requests(i, batch_bytes(pb, rng, args.batch, args.dim, "greedy-%d" % i)))
             for i in range(args.streams)]
    while calls:
        print("sent %d %d %d" % (sum(sent), min(sent), max(sent)), flush=True)
        time.sleep(1)


def vmrss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def probe(args, pb):
    channel = grpc.insecure_channel(args.server)
    status = raw(channel, STATUS)
    similarity = raw(channel, SIMILARITY)
    rng = random.Random(3)
    dim, pairs = 16, 10
    sim_req = pb.SimilarityRequest(dim=dim, left=[rng.uniform(-1, 1) for _ in range(pairs * dim)],
                                   right=[rng.uniform(-1, 1) for _ in range(pairs * dim)]
                                   ).SerializeToString()
    lat, failures, steps, rss = [], [], [], []
    t_start = time.monotonic()
    while time.monotonic() - t_start < args.seconds:
        for name, call, req in (("Status", status, b""), ("Similarity", similarity, sim_req)):
            t0 = time.monotonic()
            try:
                resp = call(req, timeout=5)
                lat.append((time.monotonic() - t0) * 1e3)
                if name == "Status":
                    steps.append((time.monotonic() - t_start,
                                  pb.StatusResponse.FromString(resp).global_step))
                elif len(pb.SimilarityResponse.FromString(resp).distances) != pairs:
                    failures.append("%s: not %d distances" % (name, pairs))
            except grpc.RpcError as e:
                failures.append("%s: %s: %s" % (name, e.code().name, e.details()))
        if args.pid:
            mb = vmrss_mb(args.pid)
            if mb is not None:
                rss.append(mb)
        time.sleep(0.05)
    lat.sort()
    last_step = steps[-1][1] if steps else -1
    moved_at = 0.0  # when global_step last changed
    for i in range(1, len(steps)):
        if steps[i][1] != steps[i - 1][1]:
            moved_at = steps[i][0]
    report = {
        "calls": len(lat) + len(failures), "failures": len(failures),
        "p50_ms": round(lat[len(lat) // 2], 3) if lat else 0,
        "max_ms": round(lat[-1], 3) if lat else 0,
        "global_step_first": steps[0][1] if steps else -1, "global_step_last": last_step,
        "global_step_still_s": round((steps[-1][0] - moved_at) if steps else 0, 2),
    }
    if args.pid:
        report.update({"rss_first_mb": round(rss[0], 1) if rss else 0,
                       "rss_max_mb": round(max(rss), 1) if rss else 0,
                       "rss_last_mb": round(rss[-1], 1) if rss else 0})
    for f in failures[:20]:
        print("probe: " + f, file=sys.stderr)
    print(json.dumps(report), flush=True)
    return 1 if failures else 0


def oversize(args, pb):
    limit = args.limit_mb << 20
    # no client-side limits: the server's is the one under test
    channel = grpc.insecure_channel(args.server, options=[
        ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)])
    dim = 128
    pairs = limit // (2 * dim * 4) + 1  # 2 x pairs x dim floats: just over the limit
    left = [0.01] * (pairs * dim)
    right = [0.02] * (pairs * dim)
    fails = 0

    def expect(what, size, fn):
        nonlocal fails
        try:
            fn()
            ok, got = False, "answered OK"
        except grpc.RpcError as e:
            got = "%s: %s" % (e.code().name, e.details())
            ok = (e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and str(limit) in e.details()
                  and "--max-message-mb" in e.details())
        print("%s %s of %d bytes (limit %d): %s" % ("ok  " if ok else "FAIL", what, size, limit,
                                                     got), flush=True)
        fails += not ok

    batch = pb.EmbeddingBatch(dim=dim, left=left, right=right, labels=[1] * pairs,
                              worker_id="oversize").SerializeToString()
    expect("Train batch", len(batch),
           lambda: list(raw(channel, TRAIN, stream=True)(iter([batch]), timeout=30)))
    req = pb.SimilarityRequest(dim=dim, left=left, right=right).SerializeToString()
    expect("Similarity request", len(req), lambda: raw(channel, SIMILARITY)(req, timeout=30))
    try:
        pb.StatusResponse.FromString(raw(channel, STATUS)(b"", timeout=5))
        print("ok   Status answers afterwards", flush=True)
    except grpc.RpcError as e:
        print("FAIL Status afterwards: %s: %s" % (e.code().name, e.details()), flush=True)
        fails += 1
    return 1 if fails else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["greedy", "probe", "oversize"])
    p.add_argument("--server", required=True)
    p.add_argument("--stubs", required=True, help="directory of protoc --python_out")
    p.add_argument("--streams", type=int, default=32)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--pid", type=int, default=0)
    p.add_argument("--limit-mb", type=int, default=16)
    args = p.parse_args()
    pb = load_stubs(args.stubs)
    if args.mode == "greedy":
        greedy(args, pb)
        return 0
    if args.mode == "probe":
        return probe(args, pb)
    return oversize(args, pb)


if __name__ == "__main__":
    sys.exit(main())
