#!/usr/bin/python3
"""What tests/container_test.sh asks a siam-server running in a container, from outside it:
Status, the health check (the call Kubernetes' gRPC probes make: grpc.health.v1.Health/Check
with service ""), and optionally Similarity of Fashion-MNIST test images, which the server embeds
with its averaged model. Prints one JSON object; exits 1 when a call fails.

    container_probe.py --server HOST:PORT --stubs DIR [--pairs N --data DIR] [--wait SECONDS]

DIR holds protoc --python_out of siam.proto and health.proto (tests/e2e_lib.sh python_stubs).
--pairs N: N pairs of test images of the same class and N of different classes (the first ones
in the test set, from its labels), sent as raw bytes in one SimilarityRequest; the JSON then has
every pair's distance and verdict, the mean distance of each kind and the share of verdicts that
agree with the labels. --wait: how long to wait for the server to accept the connection.
Run it with /usr/bin/python3 (Debian's grpcio); the calls go through tests/raw_client.py's
channel and method table, not through clients/python.
"""

import argparse
import gzip
import importlib.util
import json
import os
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("raw_client", os.path.join(here, "raw_client.py"))
raw_client = importlib.util.module_from_spec(spec)
spec.loader.exec_module(raw_client)
grpc = raw_client.grpc


def read_idx(path, magic_want):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    if magic != magic_want:
        sys.exit(f"container_probe.py: {path} is not an IDX file of magic {magic_want:#x}")
    return data


def test_pairs(data_dir, n):
    """n (i, j) pairs of the same label and n of different labels, in test-set order."""
    labels = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"), 0x801)[8:]
    same, diff = [], []
    last_of = {}
    for j, y in enumerate(labels):
        if y in last_of and len(same) < n:
            same.append((last_of[y], j))
        if j > 0 and labels[j - 1] != y and len(diff) < n:
            diff.append((j - 1, j))
        last_of[y] = j
        if len(same) == n and len(diff) == n:
            break
    return same, diff


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, metavar="HOST:PORT")
    p.add_argument("--stubs", required=True, metavar="DIR")
    p.add_argument("--pairs", type=int, default=0, metavar="N")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist", metavar="DIR")
    p.add_argument("--wait", type=float, default=10.0, metavar="SECONDS")
    args = p.parse_args()

    pb, health_pb = raw_client.load_stubs(args.stubs)
    channel = raw_client.connect(args.server, timeout=args.wait)
    siam = raw_client.Siam(channel, pb, health_pb)
    out = {}
    try:
        st = siam.status(pb.StatusRequest(), timeout=10)
        out.update(version=st.version, round=st.round, global_step=st.global_step,
                   min_workers=st.min_workers, joined_workers=st.joined_workers,
                   workers=sorted(w.worker_id for w in st.workers), model_spec=st.model_spec,
                   checkpoint_path=st.checkpoint_path, checkpoint_round=st.checkpoint_round,
                   checkpoint_failures=st.checkpoint_failures)
        h = siam.health(health_pb.HealthCheckRequest(service=""), timeout=10)
        out["health"] = siam.serving_status_name(h.status)
        if args.pairs > 0:
            same, diff = test_pairs(args.data, args.pairs)
            pixels, n, size = raw_client.read_idx_images(
                os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
            pairs = same + diff
            left = b"".join(pixels[i * size:(i + 1) * size] for i, _ in pairs)
            right = b"".join(pixels[j * size:(j + 1) * size] for _, j in pairs)
            r = siam.similarity(pb.SimilarityRequest(left_images=left, right_images=right),
                                timeout=30)
            if len(r.distances) != len(pairs):
                sys.exit(f"container_probe.py: {len(r.distances)} distances for {len(pairs)} "
                         "pairs")
            rows = [{"left": i, "right": j, "same_label": k < len(same),
                     "distance": r.distances[k], "same": bool(r.same[k])}
                    for k, (i, j) in enumerate(pairs)]
            d_same = [x["distance"] for x in rows if x["same_label"]]
            d_diff = [x["distance"] for x in rows if not x["same_label"]]
            out.update(threshold=r.threshold, pairs=rows,
                       mean_same=sum(d_same) / len(d_same), mean_diff=sum(d_diff) / len(d_diff),
                       agree=sum(x["same"] == x["same_label"] for x in rows) / len(rows))
    except grpc.RpcError as e:
        print(f"container_probe.py: call failed: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
