#!/usr/bin/python3
"""search_test's independent side, in plain Python (Debian's /usr/bin/python3; grpcio and the
message classes of protoc --python_out only for the Status calls):

    search_check.py wait-gallery --server ADDR --stubs DIR --size N [--timeout S]
        waits until the server's Status reports a gallery of N items embedded with the current
        model round; prints "gallery_size gallery_round round margin input_shape".
    search_check.py compare-knn KNN.tsv SEARCH.jsonl
        siam-client evaluate --knn-k 1 --knn-predictions against siam-client search -k 1 --json of
        the same test images: per image the nearest training image (its id), its class and the
        distance; prints the agreement and both accuracies; exits 1 on any difference.
    search_check.py check-matches SEARCH.jsonl --threshold T --k K
        every answer: at most k matches, distances non-decreasing, score = 1 / (1 + (D/T)^2), the
        predicted label and confidence = the distance-weighted vote (weight 1 / (D + 1e-6))
        computed here; exits 1 on any difference.
    search_check.py subset DATA_DIR OUT_DIR --per-class N [--seed S]
        the first N training images of each class (with --seed S > 0: N drawn at random, Python's
        random.Random(S)): writes OUT_DIR/train-images-idx3-ubyte and
        train-labels-idx1-ubyte (plain IDX) with them, links the test files, and prints their
        indices as one comma-separated list.
    search_check.py pgm DATA_DIR OUT_DIR INDEX...
        writes test image INDEX as OUT_DIR/test_INDEX.pgm (binary P5) for each index.
    search_check.py png-size FILE
        prints the PNG's width and height (exit 1 if it is not a PNG).
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic[:3] != b"\0\0\x08":
        raise SystemExit(f"{path}: not an IDX file of unsigned bytes")
    nd = magic[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return dims, data[4 + 4 * nd:]


def data_file(data_dir, name):
    for p in (os.path.join(data_dir, name + ".gz"), os.path.join(data_dir, name)):
        if os.path.exists(p):
            return p
    raise SystemExit(f"{name} not found in {data_dir}")


def load_stubs(stubs):
    sys.path.insert(0, stubs)
    from siam.v1 import siam_pb2  # noqa: E402
    return siam_pb2


def wait_gallery(a):
    import grpc
    pb = load_stubs(a.stubs)
    end = time.time() + a.timeout
    last = None
    with grpc.insecure_channel(a.server) as ch:
        status = ch.unary_unary("/siam.v1.Siamese/Status",
                                request_serializer=pb.StatusRequest.SerializeToString,
                                response_deserializer=pb.StatusResponse.FromString)
        while time.time() < end:
            try:
                s = status(pb.StatusRequest(), timeout=5)
                last = s
                if s.gallery_size == a.size and s.gallery_round == s.round:
                    print(s.gallery_size, s.gallery_round, s.round, repr(s.margin), s.input_shape)
                    return 0
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    print(f"the gallery did not reach {a.size} items at the current round within {a.timeout} s; "
          f"last Status: gallery_size={getattr(last, 'gallery_size', None)} "
          f"gallery_round={getattr(last, 'gallery_round', None)} round={getattr(last, 'round', None)}")
    return 1


def read_jsonl(path):
    rows, summary = [], None
    with open(path) as f:
        for line in f:
            o = json.loads(line)
            if "summary" in o:
                summary = o["summary"]
            else:
                rows.append(o)
    return rows, summary


def compare_knn(a):
    knn = {}
    with open(a.knn) as f:
        for line in f:
            if line.startswith("#"):
                continue
            i, cls, pred, nearest, ncls, dist = line.split("\t")
            knn[int(i)] = (int(cls), int(pred), int(nearest), int(ncls), float(dist))
    rows, summary = read_jsonl(a.search)
    by_index = {}
    for r in rows:
        name = r["source"]
        if not name.startswith("test image "):
            raise SystemExit(f"query {r['query']} is {name}, not a test image")
        by_index[int(name.split()[-1])] = r
    diff = []
    right_knn = right_search = 0
    for i, r in sorted(by_index.items()):
        if i not in knn:
            raise SystemExit(f"test image {i} is not in {a.knn}")
        cls, pred, nearest, ncls, dist = knn[i]
        m = r["matches"][0]
        right_knn += pred == cls
        right_search += m["label"] == str(cls)
        same = (m["id"] == nearest and m["label"] == str(ncls) and str(pred) == m["label"] and
                abs(m["distance"] - dist) <= 1e-5 * max(1.0, dist) and r["class"] == cls)
        if not same:
            diff.append(f"test image {i}: evaluate nearest {nearest} (class {ncls}, D {dist:.7g}), "
                        f"search id {m['id']} (label {m['label']}, D {m['distance']:.7g})")
    n = len(by_index)
    print(f"{n} test images: evaluate kNN (k=1) accuracy {right_knn / n:.4f}, search top-1 "
          f"accuracy {right_search / n:.4f}; {n - len(diff)} identical, {len(diff)} differ")
    if summary is not None:
        print(f"search summary: top1_accuracy {summary.get('top1_accuracy')}")
    for d in diff[:10]:
        print("  " + d)
    return 1 if diff or right_knn != right_search else 0


def check_matches(a):
    rows, _ = read_jsonl(a.search)
    bad = []
    t = a.threshold
    for r in rows:
        ms = r["matches"]
        q = r["query"]
        if not 1 <= len(ms) <= a.k:
            bad.append(f"query {q}: {len(ms)} matches for k={a.k}")
            continue
        d = [m["distance"] for m in ms]
        if any(d[i] > d[i + 1] for i in range(len(d) - 1)):
            bad.append(f"query {q}: distances not in order {d}")
        if [m["rank"] for m in ms] != list(range(1, len(ms) + 1)):
            bad.append(f"query {q}: ranks {[m['rank'] for m in ms]}")
        for m in ms:
            want = 1.0 / (1.0 + (m["distance"] / t) ** 2)
            if abs(m["score"] - want) > 2e-6:
                bad.append(f"query {q}: score {m['score']} at D {m['distance']}, computed {want}")
        weight = {}
        order = []
        for m in ms:
            if m["label"] not in weight:
                order.append(m["label"])
            weight[m["label"]] = weight.get(m["label"], 0.0) + 1.0 / (m["distance"] + 1e-6)
        best = max(weight.values())
        winners = [lab for lab in order if weight[lab] >= best * (1 - 1e-9)]
        total = sum(weight.values())
        if r["predicted_label"] not in winners:
            bad.append(f"query {q}: predicted {r['predicted_label']}, the vote here gives "
                       f"{winners} ({weight})")
        elif abs(r["confidence"] - weight[r["predicted_label"]] / total) > 1e-4:
            bad.append(f"query {q}: confidence {r['confidence']}, computed "
                       f"{weight[r['predicted_label']] / total}")
    print(f"{len(rows)} answers checked: {len(bad)} wrong")
    for b in bad[:10]:
        print("  " + b)
    return 1 if bad or not rows else 0


def subset(a):
    (n, rows, cols), px = read_idx(data_file(a.data, "train-images-idx3-ubyte"))
    (nl,), labels = read_idx(data_file(a.data, "train-labels-idx1-ubyte"))
    per = {c: [] for c in range(10)}
    if a.seed:
        import random
        rng = random.Random(a.seed)
        for i in range(min(n, nl)):
            per[labels[i]].append(i)
        per = {c: rng.sample(v, a.per_class) for c, v in per.items()}
    else:
        for i in range(min(n, nl)):
            if len(per[labels[i]]) < a.per_class:
                per[labels[i]].append(i)
            if all(len(v) == a.per_class for v in per.values()):
                break
    chosen = sorted(i for v in per.values() for i in v)
    os.makedirs(a.out, exist_ok=True)
    size = rows * cols
    with open(os.path.join(a.out, "train-images-idx3-ubyte"), "wb") as f:
        f.write(b"\0\0\x08\x03" + struct.pack(">III", len(chosen), rows, cols))
        for i in chosen:
            f.write(px[i * size:(i + 1) * size])
    with open(os.path.join(a.out, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(b"\0\0\x08\x01" + struct.pack(">I", len(chosen)))
        f.write(bytes(labels[i] for i in chosen))
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        src = data_file(a.data, name)
        dst = os.path.join(a.out, os.path.basename(src))
        if not os.path.exists(dst):
            os.symlink(os.path.abspath(src), dst)
    print(",".join(map(str, chosen)))
    return 0


def pgm(a):
    (n, rows, cols), px = read_idx(data_file(a.data, "t10k-images-idx3-ubyte"))
    size = rows * cols
    for i in a.index:
        with open(os.path.join(a.out, f"test_{i}.pgm"), "wb") as f:
            f.write(b"P5\n%d %d\n255\n" % (cols, rows) + px[i * size:(i + 1) * size])
    return 0


def png_size(a):
    with open(a.file, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        print(f"{a.file} is not a PNG")
        return 1
    print(*struct.unpack(">II", head[16:24]))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait-gallery")
    w.add_argument("--server", required=True)
    w.add_argument("--stubs", required=True)
    w.add_argument("--size", type=int, required=True)
    w.add_argument("--timeout", type=float, default=120)
    c = sub.add_parser("compare-knn")
    c.add_argument("knn")
    c.add_argument("search")
    m = sub.add_parser("check-matches")
    m.add_argument("search")
    m.add_argument("--threshold", type=float, required=True)
    m.add_argument("--k", type=int, required=True)
    s = sub.add_parser("subset")
    s.add_argument("data")
    s.add_argument("out")
    s.add_argument("--per-class", type=int, default=5)
    s.add_argument("--seed", type=int, default=0)
    g = sub.add_parser("pgm")
    g.add_argument("data")
    g.add_argument("out")
    g.add_argument("index", type=int, nargs="+")
    z = sub.add_parser("png-size")
    z.add_argument("file")
    a = p.parse_args()
    return {"wait-gallery": wait_gallery, "compare-knn": compare_knn,
            "check-matches": check_matches, "subset": subset, "pgm": pgm,
            "png-size": png_size}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
