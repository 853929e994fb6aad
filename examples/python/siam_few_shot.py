#!/usr/bin/python3
"""Few-shot identification with siam's Python client library (clients/python): the server learns
two classes from five images each, without retraining. Five test images of one Fashion-MNIST
class and five of another go into the server's gallery under new labels (add_to_gallery); five
other images of each class are then searched (search) and their predicted labels printed.

    ~/.venvs/siam/bin/python examples/python/siam_few_shot.py --server 127.0.0.1:50051

The server needs a model (siam-server --resume CKPT, --model, or a worker that joined). With an
empty gallery the two new labels compete with each other; a gallery that already holds these
classes (siam-server --gallery with the training set) answers with its own labels for them
("8" for Bag) where its items are nearer. Options: --class N and --contrast N (0-9, default 8
Bag and 9 Ankle boot), --shots N (default 5), --data DIR (the Fashion-MNIST IDX files), and
--tls-ca PEM [--tls-cert PEM --tls-key PEM] [--tls-server-name NAME], --auth-token-file PATH as
siam_similarity.py. Exit status: 0, 1 when a call fails (the error's code and the server's
message on stderr), 2 on bad usage."""

import argparse
import gzip
import os
import struct
import sys

import siam_client

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]


def read_idx(data, name):
    """The items of a Fashion-MNIST IDX file (gzip'd or not): (dims, bytes)."""
    for path in (os.path.join(data, name + ".gz"), os.path.join(data, name)):
        if os.path.exists(path):
            with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
                raw = f.read()
            nd = raw[3]
            return struct.unpack(">" + "I" * nd, raw[4:4 + 4 * nd]), raw[4 + 4 * nd:]
    raise SystemExit(f"siam_few_shot.py: {name}(.gz) not found in {data}: apt-get install "
                     "dataset-fashion-mnist, or give --data DIR")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="127.0.0.1:50051", metavar="HOST:PORT")
    p.add_argument("--class", dest="cls", type=int, default=8, choices=range(10), metavar="N")
    p.add_argument("--contrast", type=int, default=9, choices=range(10), metavar="N")
    p.add_argument("--shots", type=int, default=5, metavar="N")
    p.add_argument("--data", default=os.environ.get("SIAM_DATA_DIR",
                                                    "/usr/share/datasets/fashion-mnist"))
    p.add_argument("--tls-ca", metavar="PEM")
    p.add_argument("--tls-cert", metavar="PEM")
    p.add_argument("--tls-key", metavar="PEM")
    p.add_argument("--tls-server-name", metavar="NAME")
    p.add_argument("--auth-token-file", metavar="PATH")
    args = p.parse_args()
    if args.contrast == args.cls or not 1 <= args.shots <= 100:
        p.error("--contrast must differ from --class, and --shots be 1..100")
    (n, rows, cols), pixels = read_idx(args.data, "t10k-images-idx3-ubyte")
    _, classes = read_idx(args.data, "t10k-labels-idx1-ubyte")
    size = rows * cols
    image = lambda i: pixels[i * size:(i + 1) * size]  # noqa: E731
    taught = (args.cls, args.contrast)
    labels = {c: f"new-{CLASSES[c]}" for c in taught}
    of_class = {c: [i for i in range(n) if classes[i] == c] for c in taught}
    token = None
    if args.auth_token_file:
        with open(args.auth_token_file) as f:
            token = f.readline().strip()
    try:
        with siam_client.Client(args.server, token=token, tls_ca=args.tls_ca,
                                tls_cert=args.tls_cert, tls_key=args.tls_key,
                                server_name=args.tls_server_name, timeout=30) as siam:
            st = siam.status()
            print(f"siam-server at {args.server}: model round {st.round}, gallery of "
                  f"{st.gallery_size} items")
            for c in taught:  # five images of each class, under a label the gallery never had
                shots = of_class[c][:args.shots]
                added = siam.add_to_gallery([image(i) for i in shots], labels[c])
                print(f"added {len(added)} images of {CLASSES[c]} (test images "
                      f"{', '.join(map(str, shots))}) as \"{labels[c]}\": ids {added.ids[0]}.."
                      f"{added.ids[-1]}, gallery of {added.gallery_size} items")
            asked = [i for c in taught for i in of_class[c][args.shots:args.shots + 5]]
            r = siam.search(images=[image(i) for i in asked], k=5)
    except siam_client.SiamError as e:
        print(f"siam_few_shot.py: {e.code.name}: {e.message}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"siam_few_shot.py: {e}", file=sys.stderr)
        return 2
    print(f"search of five other images of each (k=5, model round {r.model_round}):")
    for i, res in zip(asked, r):
        nearest = res.matches[0]
        print(f"  test image {i:5d} ({CLASSES[classes[i]]:<11}) -> {res.predicted_label} "
              f"(confidence {res.confidence:.2f}; nearest id {nearest.id} at {nearest.distance:.3f})")
    for c in taught:
        hits = sum(res.predicted_label == labels[c] for i, res in zip(asked, r) if classes[i] == c)
        print(f"{CLASSES[c]}: {hits} of 5 predicted \"{labels[c]}\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
