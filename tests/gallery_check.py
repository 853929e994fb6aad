#!/usr/bin/python3
"""Search and AddToGallery against a real siam-server with a gallery of the Fashion-MNIST
training images, from Debian's python3-grpcio (no siam client library: what it checks is the
wire). tests/gallery_test.sh runs it in three steps:

    gallery_check.py --server ADDR --stubs DIR --data DATA search
        Status (gallery size, input shape, the round), Search by images: every returned label
        is the IDX label of the returned id, distances nondecreasing, a training image finds
        itself at distance 0, each distance equals image Similarity's between the query and the
        match's training image (two RPCs, one model), the predicted label is right for most test
        images; Search by embeddings (dim checked, answers sorted); AddToGallery of five test
        images with new labels, searchable at once; the bad requests of the issue.
    gallery_check.py ... restored
        after a restart with --resume: the five added items are there with their labels and
        ids, and the next add continues the ids.
    gallery_check.py ... --token-file F token
        a server with --auth-token-file F: AddToGallery and Search without the token are
        UNAUTHENTICATED, with it they work.

One line per check, then "N passed, M failed"; exits 1 if any failed.
"""

import argparse
import gzip
import importlib.util
import os
import random
import sys
import time

import grpc

SVC = "/siam.v1.Siamese/"
IMG = 784
ADDED_LABELS = ["few-shot-%d" % i for i in range(5)]
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print("ok   " + what)
    else:
        failed += 1
        print("FAIL " + what)
    return ok


def load_pb(stubs):
    path = os.path.join(stubs, "siam", "v1", "siam_pb2.py")
    spec = importlib.util.spec_from_file_location("siam_v1_siam_pb2", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def idx(path, header):
    with gzip.open(path, "rb") as f:
        return f.read()[header:]


class Server:
    def __init__(self, addr, pb, token=None):
        self.pb = pb
        self.channel = grpc.insecure_channel(addr)
        self.meta = [("authorization", "Bearer " + token)] if token else None

        def method(name, req, resp):
            return self.channel.unary_unary(SVC + name, request_serializer=req.SerializeToString,
                                            response_deserializer=resp.FromString)
        self._status = method("Status", pb.StatusRequest, pb.StatusResponse)
        self._search = method("Search", pb.SearchRequest, pb.SearchResponse)
        self._add = method("AddToGallery", pb.GalleryAddRequest, pb.GalleryAddResponse)
        self._sim = method("Similarity", pb.SimilarityRequest, pb.SimilarityResponse)

    def status(self):
        return self._status(self.pb.StatusRequest(), timeout=10, metadata=self.meta)

    def search(self, **kw):
        return self._search(self.pb.SearchRequest(**kw), timeout=30, metadata=self.meta)

    def add(self, images, labels):
        return self._add(self.pb.GalleryAddRequest(images=images, labels=labels), timeout=30,
                         metadata=self.meta)

    def similarity(self, left, right):
        return self._sim(self.pb.SimilarityRequest(left_images=left, right_images=right),
                         timeout=30, metadata=self.meta)


def refused(fn, code, text):
    """fn() fails with code and a message holding text."""
    try:
        fn()
    except grpc.RpcError as e:
        ok = e.code() == code and text in (e.details() or "")
        if not ok:
            print("     got %s: %s" % (e.code(), e.details()))
        return ok
    print("     got OK")
    return False


def wait_embedded(srv, want, secs=120):
    end = time.time() + secs
    while time.time() < end:
        st = srv.status()
        if st.gallery_embedded == want and st.gallery_size == want:
            return st
        time.sleep(0.2)
    return srv.status()


def check_search(srv, pb, data):
    tr_img = idx(os.path.join(data, "train-images-idx3-ubyte.gz"), 16)
    tr_lab = idx(os.path.join(data, "train-labels-idx1-ubyte.gz"), 8)
    te_img = idx(os.path.join(data, "t10k-images-idx3-ubyte.gz"), 16)
    te_lab = idx(os.path.join(data, "t10k-labels-idx1-ubyte.gz"), 8)
    st = wait_embedded(srv, 60000)
    check(st.gallery_size == 60000 and st.gallery_embedded == 60000,
          "Status: gallery of 60,000 items, all embedded (%d, %d)" %
          (st.gallery_size, st.gallery_embedded))
    check(st.input_shape == "28x28x1" and st.gallery_round == st.round,
          "Status: input_shape %s, gallery_round %d = round %d" %
          (st.input_shape, st.gallery_round, st.round))
    # by images: 200 test images and 20 training images
    q = te_img[:200 * IMG]
    r = srv.search(images=q, k=5)
    check(len(r.results) == 200 and r.gallery_size == 60000 and r.model_round == st.round,
          "Search of 200 test images: 200 results, gallery_size 60000, model_round %d" %
          r.model_round)
    labels_ok = all(m.label == str(tr_lab[m.id]) for res in r.results for m in res.matches)
    check(labels_ok, "every match's label is the IDX label of its id")
    sorted_ok = all(len(res.matches) == 5 and
                    all(a.distance <= b.distance for a, b in zip(res.matches, res.matches[1:]))
                    for res in r.results)
    check(sorted_ok, "5 matches per query, nearest first")
    right = sum(res.predicted_label == str(te_lab[i]) for i, res in enumerate(r.results))
    check(right >= 120, "predicted labels right for %d of 200 test images" % right)
    conf_ok = all(0 < res.confidence <= 1 for res in r.results)
    check(conf_ok, "confidences in (0, 1]")
    # distances agree with image Similarity of the query and the match's training image
    left, right_imgs, want = b"", b"", []
    for i in range(0, 200, 10):
        for m in r.results[i].matches[:2]:
            left += q[i * IMG:(i + 1) * IMG]
            right_imgs += tr_img[m.id * IMG:(m.id + 1) * IMG]
            want.append(m.distance)
    s = srv.similarity(left, right_imgs)
    worst = max(abs(a - b) / max(b, 1e-6) for a, b in zip(s.distances, want))
    check(worst < 1e-5, "Search distances equal image Similarity's (worst relative %.2g)" % worst)
    # training images find themselves
    ids = random.Random(7).sample(range(60000), 20)
    r2 = srv.search(images=b"".join(tr_img[i * IMG:(i + 1) * IMG] for i in ids), k=64)
    self_ok = all(any(m.id == i and m.distance == 0 for m in res.matches)
                  for i, res in zip(ids, r2.results))
    check(self_ok and all(len(res.matches) == 64 for res in r2.results),
          "20 training images find themselves at distance 0 among 64 matches")
    # by embeddings
    dim = 64
    rng = random.Random(3)
    emb = [rng.gauss(0, 1) for _ in range(3 * dim)]
    r3 = srv.search(dim=dim, embeddings=emb)
    check(len(r3.results) == 3 and all(len(x.matches) == 5 for x in r3.results),
          "Search by 3 embeddings of dim 64 (k 0 = 5 matches)")
    check(refused(lambda: srv.search(dim=32, embeddings=emb[:64]), grpc.StatusCode.INVALID_ARGUMENT,
                  "dim is 32, the gallery's embeddings have 64"),
          "embeddings of another dim: INVALID_ARGUMENT naming both")
    # bad requests
    check(refused(lambda: srv.search(images=q[:IMG], k=65), grpc.StatusCode.INVALID_ARGUMENT,
                  "k is 65, expected 1..64"), "k 65: INVALID_ARGUMENT")
    check(refused(lambda: srv.search(images=q[:IMG - 1]), grpc.StatusCode.INVALID_ARGUMENT,
                  "783 bytes, expected a non-zero multiple of 784 bytes = one 28x28x1 image"),
          "a 783-byte image: INVALID_ARGUMENT with the shape")
    check(refused(lambda: srv.search(images=q[:IMG], dim=64, embeddings=emb[:64]),
                  grpc.StatusCode.INVALID_ARGUMENT, "both images"),
          "images and embeddings: INVALID_ARGUMENT")
    check(refused(lambda: srv.add(q[:2 * IMG], ["ok", "bad\x01"]),
                  grpc.StatusCode.INVALID_ARGUMENT, "labels[1] has a control character"),
          "a label with a control character: INVALID_ARGUMENT naming labels[1]")
    check(refused(lambda: srv.add(q[:IMG], ["x" * 65]), grpc.StatusCode.INVALID_ARGUMENT,
                  "labels[0] has 65 bytes, expected 1..64"), "a 65-byte label: INVALID_ARGUMENT")
    check(refused(lambda: srv.add(q[:IMG], ["a", "b"]), grpc.StatusCode.INVALID_ARGUMENT,
                  "labels has 2 labels, expected one per image (1)"),
          "two labels for one image: INVALID_ARGUMENT")
    # few-shot: five test images with new labels, searchable at once
    few = te_img[500 * IMG:505 * IMG]
    a = srv.add(few, ADDED_LABELS)
    check(list(a.ids) == list(range(60000, 60005)) and a.gallery_size == 60005 and
          a.model_round == st.round,
          "AddToGallery of 5: ids %s, gallery_size %d" % (list(a.ids), a.gallery_size))
    r4 = srv.search(images=few, k=1)
    found = [res.matches[0].id == 60000 + i and res.matches[0].label == ADDED_LABELS[i] and
             res.matches[0].distance == 0 and res.predicted_label == ADDED_LABELS[i]
             for i, res in enumerate(r4.results)]
    check(all(found), "the 5 added images are found at once, first, with their labels")
    check(srv.status().gallery_size == 60005, "Status: gallery_size 60005")


def check_restored(srv, pb, data):
    te_img = idx(os.path.join(data, "t10k-images-idx3-ubyte.gz"), 16)
    st = wait_embedded(srv, 60005)
    check(st.gallery_size == 60005 and st.gallery_embedded == 60005,
          "restored gallery: %d items, %d embedded" % (st.gallery_size, st.gallery_embedded))
    few = te_img[500 * IMG:505 * IMG]
    r = srv.search(images=few, k=1)
    check(all(res.matches[0].id == 60000 + i and res.matches[0].label == ADDED_LABELS[i] and
              res.matches[0].distance == 0 for i, res in enumerate(r.results)),
          "the 5 items added before the restart are found with their ids and labels")
    a = srv.add(te_img[600 * IMG:601 * IMG], ["after-restart"])
    check(list(a.ids) == [60005], "the next add continues the ids: %s" % list(a.ids))


def check_token(srv_plain, srv_token, pb, data):
    te_img = idx(os.path.join(data, "t10k-images-idx3-ubyte.gz"), 16)
    check(refused(lambda: srv_plain.add(te_img[:IMG], ["t"]), grpc.StatusCode.UNAUTHENTICATED,
                  ""), "AddToGallery without the token: UNAUTHENTICATED")
    check(refused(lambda: srv_plain.search(images=te_img[:IMG]), grpc.StatusCode.UNAUTHENTICATED,
                  ""), "Search without the token: UNAUTHENTICATED")
    a = srv_token.add(te_img[:IMG], ["t"])
    r = srv_token.search(images=te_img[:IMG], k=1)
    check(list(a.ids) == [0] and r.results[0].matches[0].label == "t",
          "with the token: added and found")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--stubs", required=True)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--token-file")
    ap.add_argument("step", choices=["search", "restored", "token"])
    a = ap.parse_args()
    pb = load_pb(a.stubs)
    if a.step == "token":
        with open(a.token_file) as f:
            token = f.readline().strip()
        check_token(Server(a.server, pb), Server(a.server, pb, token), pb, a.data)
    else:
        srv = Server(a.server, pb)
        (check_search if a.step == "search" else check_restored)(srv, pb, a.data)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
