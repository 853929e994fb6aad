#!/usr/bin/python3
"""Call siam-server from Python with siam's client library (clients/python, import siam_client):
the server's Status and health, then the distances, scores and same/different verdicts of a few
pairs of embeddings.

    python3 -m venv --system-site-packages ~/.venvs/siam
    ~/.venvs/siam/bin/python -m pip install --no-build-isolation ./clients/python
    ~/.venvs/siam/bin/python examples/python/siam_similarity.py --server 127.0.0.1:50051

Options: --dim N (dimension of the demo pairs), --tls-ca PEM [--tls-cert PEM --tls-key PEM]
[--tls-server-name NAME] for TLS, --auth-token-file PATH for a server with a token. Exit status:
0, 1 when a call fails (the error's code and the server's message on stderr), 2 on bad usage."""

import argparse
import math
import sys

import siam_client


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="127.0.0.1:50051", metavar="HOST:PORT")
    p.add_argument("--dim", type=int, default=4, metavar="N")
    p.add_argument("--tls-ca", metavar="PEM")
    p.add_argument("--tls-cert", metavar="PEM")
    p.add_argument("--tls-key", metavar="PEM")
    p.add_argument("--tls-server-name", metavar="NAME")
    p.add_argument("--auth-token-file", metavar="PATH")
    args = p.parse_args()
    token = None
    if args.auth_token_file:
        with open(args.auth_token_file) as f:
            token = f.readline().strip()
    try:
        with siam_client.Client(args.server, token=token, tls_ca=args.tls_ca,
                                tls_cert=args.tls_cert, tls_key=args.tls_key,
                                server_name=args.tls_server_name, timeout=10) as siam:
            st = siam.status()
            print(f"siam-server {st.version} at {args.server}: margin {st.margin:g}, label 1 "
                  f"marks {st.label_convention} pairs, global step {st.global_step}, "
                  f"{len(st.workers)} worker(s) seen")
            print(f"health: {siam.health()}")
            # identical, close, at the default threshold (margin / 2), far
            base = [0.1 * k for k in range(args.dim)]
            moved = lambda d: [x + d / math.sqrt(args.dim) for x in base]  # noqa: E731
            pairs = {"identical": base, "close": moved(0.1),
                     "at margin/2": [st.margin / 2] + base[1:], "far": moved(2.0)}
            r = siam.similarity(embeddings=([base] * len(pairs), list(pairs.values())))
    except siam_client.SiamError as e:
        print(f"siam_similarity.py: {e.code.name}: {e.message}", file=sys.stderr)
        return 1
    except ValueError as e:  # bad options (e.g. a token with a space, a missing TLS file)
        print(f"siam_similarity.py: {e}", file=sys.stderr)
        return 2
    print(f"Similarity of {len(r)} pairs of {args.dim}-d embeddings (threshold {r.threshold:g}):")
    print(f"  {'pair':<18} {'distance':>9} {'score':>7}  same")
    for name, d, s, same in zip(pairs, r.distances, r.scores, r.same):
        print(f"  {name:<18} {d:9.4f} {s:7.4f}  {'yes' if same else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
