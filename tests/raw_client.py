#!/usr/bin/python3
"""siam-server called from Python without siam's client library: Debian's grpcio, the message
classes of protoc --python_out and the methods' full paths (no grpc_tools). The test suite's
independent Python caller (python_test, tls_test, averaging_test, valgrind_test, ...): what it
checks does not go through clients/python, whose own tests use this server too. Callers should use
the library instead (clients/python, examples/python/siam_similarity.py).

    apt-get install python3-grpcio python3-protobuf protobuf-compiler
    protoc -I proto --python_out=build/python \
        proto/siam/v1/siam.proto proto/grpc/health/v1/health.proto

writes build/python/siam/v1/siam_pb2.py and build/python/grpc/health/v1/health_pb2.py; pass that
directory with --stubs. Run it with /usr/bin/python3 (Debian's interpreter, which sees those
packages).

Usage:

    raw_client.py --server 127.0.0.1:50051 [--dim 4] [--stubs DIR]
        prints the distances, scores and same/different verdicts of a few example pairs, and the
        server's Status (version, margin, label convention) and health.

    raw_client.py --server 127.0.0.1:50051 --stubs DIR --check
        the test suite's cross-language check: Similarity against distances computed here, bad
        requests refused with INVALID_ARGUMENT naming the field, a Train batch against the
        contrastive loss and gradients computed here, an unknown method answered UNIMPLEMENTED,
        and the health check. One line per check; exits 1 if any fails. It expects the server's
        default threshold (margin / 2).

    raw_client.py --server 127.0.0.1:50051 --stubs DIR --images 0:1,2:3 [--data DIR] [--json]
        compares Fashion-MNIST test images by index (pairs I:J) with the server's global model:
        the images' raw bytes go in the request (left_images, right_images) and the server embeds
        them. Prints one line per pair, or one JSON object with --json. The server needs a model
        (a worker has joined with siam-client --sync-every, or siam-server --model/--resume);
        until then it answers FAILED_PRECONDITION.

TLS and tokens (siam-server --tls-cert/--tls-key [--tls-client-ca], --auth-token-file):

    raw_client.py --server localhost:50051 --tls-ca ca.pem [--tls-cert client.pem
        --tls-key client.key] [--tls-server-name NAME] [--auth-token-file token.txt] ...
        connects with TLS (the server's certificate must be signed by a CA in ca.pem and hold the
        host of --server, or NAME), with a client certificate for mutual TLS, and sends the
        metadata "authorization: Bearer <token>" (the token file's first line) on every call.

Exit status: 0 on success, 1 on a failed check or a failed call, 2 on bad usage.
"""

import argparse
import collections
import gzip
import importlib.util
import json
import math
import os
import random
import struct
import sys
import time

try:
    import grpc
except ImportError:
    sys.exit("raw_client.py: cannot import grpc: apt-get install python3-grpcio "
             "python3-protobuf (and run this script with /usr/bin/python3)")

# Full method paths (package siam.v1, service Siamese; and the standard health service).
SIMILARITY = "/siam.v1.Siamese/Similarity"
TRAIN = "/siam.v1.Siamese/Train"
TRAIN_SET = "/siam.v1.Siamese/TrainSet"
STATUS = "/siam.v1.Siamese/Status"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"

PROTOC_HINT = ("generate them from the repository root with:\n"
               "  protoc -I proto --python_out=DIR proto/siam/v1/siam.proto "
               "proto/grpc/health/v1/health.proto\n"
               "and pass --stubs DIR")


# ---------------------------------------------------------------------------------------------
# Generated message classes

def load_module(name, path):
    """Imports the generated file at path under the module name `name`.

    Loaded by path rather than by package name: the generated health_pb2.py lives in a
    grpc/health/v1/ directory, and `import grpc.health...` would look inside the installed grpc
    package instead."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_stubs(stubs_dir):
    """Returns (siam_pb2, health_pb2) from the protoc output directory stubs_dir."""
    siam_path = os.path.join(stubs_dir, "siam", "v1", "siam_pb2.py")
    health_path = os.path.join(stubs_dir, "grpc", "health", "v1", "health_pb2.py")
    for path in (siam_path, health_path):
        if not os.path.isfile(path):
            sys.exit(f"raw_client.py: {path} not found; {PROTOC_HINT}")
    try:
        return (load_module("siam_v1_siam_pb2", siam_path),
                load_module("grpc_health_v1_health_pb2", health_path))
    except ImportError as e:  # e.g. google.protobuf missing, or stubs from a newer protoc
        sys.exit(f"raw_client.py: cannot load the generated stubs in {stubs_dir}: {e}\n"
                 "apt-get install python3-protobuf protobuf-compiler, run with /usr/bin/python3, "
                 f"and regenerate them with Debian's protoc; {PROTOC_HINT}")


class Siam:
    """The server's methods as Python callables (request message -> response message)."""

    def __init__(self, channel, pb, health_pb):
        self.pb, self.health_pb = pb, health_pb
        self.channel = channel
        self.similarity = channel.unary_unary(
            SIMILARITY,
            request_serializer=pb.SimilarityRequest.SerializeToString,
            response_deserializer=pb.SimilarityResponse.FromString)
        self.status = channel.unary_unary(
            STATUS,
            request_serializer=pb.StatusRequest.SerializeToString,
            response_deserializer=pb.StatusResponse.FromString)
        self.health = channel.unary_unary(
            HEALTH_CHECK,
            request_serializer=health_pb.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb.HealthCheckResponse.FromString)
        # Bidirectional: an iterator of EmbeddingBatch in, an iterator of BatchResult out.
        self.train = channel.stream_stream(
            TRAIN,
            request_serializer=pb.EmbeddingBatch.SerializeToString,
            response_deserializer=pb.BatchResult.FromString)
        self.train_set = channel.stream_stream(
            TRAIN_SET,
            request_serializer=pb.EmbeddingSet.SerializeToString,
            response_deserializer=pb.SetResult.FromString)

    def serving_status_name(self, status):
        return self.health_pb.HealthCheckResponse.ServingStatus.Name(status)


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                         "compression")), grpc.ClientCallDetails):
    pass


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds "authorization: Bearer <token>" to every call (siam-server --auth-token-file).

    An interceptor rather than grpc.access_token_call_credentials, which gRPC only allows on
    TLS channels: a server may take a token without TLS (it then travels in clear text)."""

    def __init__(self, token):
        self._md = ("authorization", "Bearer " + token)

    def _details(self, d):
        return _CallDetails(d.method, d.timeout, list(d.metadata or []) + [self._md],
                            d.credentials, d.wait_for_ready, d.compression)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


def read_file(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        sys.exit(f"raw_client.py: {what} {path}: {e.strerror}")


def read_token(path):
    """The token: the file's first line, surrounding whitespace trimmed, printable ASCII (as
    siam-server and siam-client read it). Never printed."""
    data = read_file(path, "--auth-token-file")
    line = data.split(b"\n", 1)[0].strip(b" \t\r")
    if not line:
        sys.exit(f"raw_client.py: --auth-token-file {path}: "
                 f"{'the file is empty' if not data else 'its first line is empty'}")
    if any(c < 0x21 or c > 0x7e for c in line):
        sys.exit(f"raw_client.py: --auth-token-file {path}: the token has a character that "
                 "is not printable ASCII (or a space)")
    return line.decode("ascii")


def connect(address, timeout=5.0, tls_ca=None, tls_cert=None, tls_key=None, server_name=None,
            token=None):
    """A channel to address (TLS when tls_ca is given), once it is ready; exits with a message
    if it never is. With a token, every call carries it."""
    if tls_ca:
        creds = grpc.ssl_channel_credentials(
            root_certificates=read_file(tls_ca, "--tls-ca"),
            private_key=read_file(tls_key, "--tls-key") if tls_key else None,
            certificate_chain=read_file(tls_cert, "--tls-cert") if tls_cert else None)
        options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        channel = grpc.secure_channel(address, creds, options=options)
    else:
        channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        hint = (" or its TLS handshake failed: check --tls-ca, --tls-cert/--tls-key and the name"
                " in the server's certificate" if tls_ca else "")
        sys.exit(f"raw_client.py: cannot reach siam-server at {address} within "
                 f"{timeout:g} s (is it running? start it with: siam-server --listen {address}"
                 f"){hint}")
    if token:
        channel = grpc.intercept_channel(channel, BearerToken(token))
    return channel


# ---------------------------------------------------------------------------------------------
# Reference maths (DESIGN.md), in double precision on the float32 values the wire carries

EPS = 1e-12  # D = sqrt(sum + eps) inside the gradient, so that D = 0 is safe


def f32(x):
    """x rounded to float32, as a proto `float` field carries it."""
    return struct.unpack("f", struct.pack("f", x))[0]


def distance(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def rows(flat, dim):
    return [flat[i:i + dim] for i in range(0, len(flat), dim)]


def contrastive(left, right, labels, dim, margin, convention):
    """(loss, distances, grad_left, grad_right) of the mean contrastive loss of a batch."""
    B = len(labels)
    loss, dists, gl = 0.0, [], []
    for a, b, y in zip(rows(left, dim), rows(right, dim), labels):
        s = y if convention == "similar" else 1 - y  # 1 when the pair is a similar pair
        d = distance(a, b)
        hinge = max(margin - d, 0.0)
        loss += s * d * d + (1 - s) * hinge * hinge
        dists.append(d)
        coef = (2 * s - 2 * (1 - s) * hinge / math.sqrt(d * d + EPS)) / B
        gl.extend(coef * (x - z) for x, z in zip(a, b))
    return loss / B, dists, gl, [-g for g in gl]


# ---------------------------------------------------------------------------------------------
# Wire encodings, written here from the contract in siam.proto (not from the server's code)

ENCODINGS = {0: "fp32", 1: "fp16", 2: "bf16", 3: "int8"}


def encode_rows(enc, flat, dim):
    """(bytes, scales) of flat float rows in encoding enc (1 fp16, 2 bf16, 3 int8)."""
    out, scales = bytearray(), []
    for row in rows(flat, dim):
        top = max(abs(x) for x in row)
        if enc == 1:
            s = f32(top) if top > 0 else 1.0
            scales.append(s)
            out += struct.pack(f"<{dim}e", *(x / s for x in row))
        elif enc == 2:
            for x in row:
                u = struct.unpack("<I", struct.pack("<f", x))[0]
                out += struct.pack("<H", ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF)
        else:
            s = f32(top / 127) if top > 0 else 1.0
            scales.append(s)
            out += struct.pack(f"<{dim}b", *(max(-127, min(127, round(x / s))) for x in row))
    return bytes(out), scales


def decode_rows(enc, data, scales, dim):
    """The float rows of bytes in encoding enc, as a flat list."""
    if enc == 1:
        vals = struct.unpack(f"<{len(data) // 2}e", data)
        return [f32(v * scales[i // dim]) for i, v in enumerate(vals)]
    if enc == 2:
        return [struct.unpack("<f", struct.pack("<I", h << 16))[0]
                for h in struct.unpack(f"<{len(data) // 2}H", data)]
    return [f32(v * scales[i // dim]) for i, v in enumerate(struct.unpack(f"<{len(data)}b", data))]


# ---------------------------------------------------------------------------------------------
# Demo

def demo(siam, address, dim):
    pb = siam.pb
    st = siam.status(pb.StatusRequest(), timeout=5)
    health = siam.health(siam.health_pb.HealthCheckRequest(service=""), timeout=5)
    print(f"siam-server {st.version} at {address}: margin {st.margin:g}, label 1 marks "
          f"{st.label_convention} pairs, global step {st.global_step}, "
          f"{len(st.workers)} worker(s) seen")
    print(f"health: {siam.serving_status_name(health.status)}")
    # the server's checkpoints (getattr: stubs made from an older siam.proto lack these fields)
    utc = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    if getattr(st, "checkpoint_path", ""):
        print(f"checkpoint: round {st.checkpoint_round} written to {st.checkpoint_path} at "
              f"{utc(st.checkpoint_unix_time)}")
    if getattr(st, "checkpoint_failures", 0):
        print(f"checkpoint failures: {st.checkpoint_failures}; the newest, of round "
              f"{st.checkpoint_failed_round} at {utc(st.checkpoint_failed_unix_time)}: "
              f"{st.checkpoint_error}")

    # A few pairs of `dim`-dimensional embeddings: identical, close, at distance margin/2 (the
    # default threshold), far.
    base = [0.1 * k for k in range(dim)]

    def moved(d):  # base moved by distance d, along the diagonal
        return [x + d / math.sqrt(dim) for x in base]

    # along the first axis, from 0: exactly margin/2 away, also in float32
    at_half_margin = [st.margin / 2] + base[1:]
    pairs = [("identical", base, base),
             ("close", base, moved(0.1)),
             ("at margin/2", base, at_half_margin),
             ("far", base, moved(2.0))]
    request = pb.SimilarityRequest(dim=dim)
    for _, a, b in pairs:
        request.left.extend(a)
        request.right.extend(b)
    r = siam.similarity(request, timeout=5)

    print(f"Similarity of {len(pairs)} pairs of {dim}-d embeddings (threshold {r.threshold:g}):")
    print(f"  {'pair':<18} {'distance':>9} {'score':>7}  same")
    for (name, _, _), d, s, same in zip(pairs, r.distances, r.scores, r.same):
        print(f"  {name:<18} {d:9.4f} {s:7.4f}  {'yes' if same else 'no'}")
    return 0


# ---------------------------------------------------------------------------------------------
# Checks

class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def close(got, want, rel=1e-5, abs_tol=1e-7):
    return math.isclose(got, want, rel_tol=rel, abs_tol=abs_tol)


class Checker:
    def __init__(self):
        self.passed = self.failed = 0

    def run(self, name, fn):
        """Runs fn(); prints one PASS/FAIL line. An unexpected gRPC status is a failure."""
        try:
            detail = fn()
        except CheckFailed as e:
            self.failed += 1
            print(f"FAIL  {name}: {e}", flush=True)
            return
        except grpc.RpcError as e:
            self.failed += 1
            print(f"FAIL  {name}: unexpected {e.code().name}: {e.details()}", flush=True)
            return
        self.passed += 1
        print(f"PASS  {name}" + (f": {detail}" if detail else ""), flush=True)


def expect_refused(call, code, words):
    """call() must fail with status `code` and details that mention every word of `words`
    (case-insensitive). Returns the details."""
    try:
        call()
    except grpc.RpcError as e:
        details = e.details() or ""
        expect(e.code() == code,
               f"got {e.code().name} ({details!r}), expected {code.name}")
        expect(details.strip() and details.isprintable(),
               f"details {details!r} are not a readable message")
        missing = [w for w in words if w.lower() not in details.lower()]
        expect(not missing, f"details {details!r} do not mention {', '.join(missing)}")
        return repr(details)
    raise CheckFailed(f"the call succeeded, expected {code.name}")


def random_pairs(rng, batch, dim, scale):
    """batch pairs (left, right) as flat float32 lists, their distances spread over 0..3*scale
    (some identical), so that both verdicts and both loss branches occur."""
    left, right = [], []
    for i in range(batch):
        a = [f32(rng.uniform(-1, 1)) for _ in range(dim)]
        direction = [rng.gauss(0, 1) for _ in range(dim)]
        norm = math.sqrt(sum(x * x for x in direction)) or 1.0
        d = 0.0 if i % 5 == 0 else rng.uniform(0, 3 * scale)
        left.extend(a)
        right.extend(f32(x + d * u / norm) for x, u in zip(a, direction))
    return left, right


def check(siam, seed):
    pb, hpb = siam.pb, siam.health_pb
    rng = random.Random(seed)
    c = Checker()
    ctx = {}
    INVALID = grpc.StatusCode.INVALID_ARGUMENT

    # ---- Status ----
    def status():
        st = siam.status(pb.StatusRequest(), timeout=5)
        parts = st.version.split(".")
        expect(len(parts) == 3 and all(p.isdigit() for p in parts),
               f"version {st.version!r} is not X.Y.Z")
        expect(math.isfinite(st.margin) and st.margin > 0, f"margin {st.margin} is not > 0")
        expect(st.label_convention in ("similar", "dissimilar"),
               f"label_convention {st.label_convention!r} is not similar|dissimilar")
        ctx["status"] = st
        return f"version {st.version}, margin {st.margin:g}, convention {st.label_convention}"

    c.run("Status: version X.Y.Z, margin > 0, label convention", status)
    if "status" not in ctx:
        print("cannot go on without the server's Status")
        return 1
    margin, convention = ctx["status"].margin, ctx["status"].label_convention

    # ---- (a) Similarity against distances computed here ----
    def similarity(batch, dim):
        left, right = random_pairs(rng, batch, dim, margin / 2)
        r = siam.similarity(pb.SimilarityRequest(dim=dim, left=left, right=right), timeout=5)
        expect(len(r.distances) == batch and len(r.scores) == batch and len(r.same) == batch,
               f"{len(r.distances)} distances, {len(r.scores)} scores, {len(r.same)} verdicts "
               f"for {batch} pairs")
        expect(r.threshold == f32(margin / 2),
               f"threshold {r.threshold:g}, expected margin/2 = {margin / 2:g} (Status margin "
               f"{margin:g})")
        order = []
        for i, (a, b) in enumerate(zip(rows(left, dim), rows(right, dim))):
            want = distance(a, b)
            got, score, same = r.distances[i], r.scores[i], r.same[i]
            expect(close(got, want, abs_tol=1e-6),
                   f"pair {i}: distance {got!r}, computed {want!r}")
            expect(0.0 <= score <= 1.0, f"pair {i}: score {score} outside [0,1]")
            if a == b:
                expect(score == 1.0, f"pair {i} (identical): score {score}, expected 1")
            expect(same == (got <= r.threshold),
                   f"pair {i}: same = {same} at distance {got!r}, threshold {r.threshold!r}")
            order.append((got, score))
        order.sort()
        for (d0, s0), (d1, s1) in zip(order, order[1:]):
            expect(s1 <= s0, f"score rises with distance: {s0} at {d0}, {s1} at {d1}")
        n_same = sum(r.same)
        return f"{n_same} same, {batch - n_same} different"

    for batch, dim in ((1, 1), (7, 1), (5, 3), (64, 3), (3, 128), (32, 128)):
        c.run(f"Similarity batch {batch} dim {dim}: distances, scores, same, threshold",
              lambda batch=batch, dim=dim: similarity(batch, dim))

    def threshold_pair():
        t = f32(margin / 2)
        dim = 3
        # identical; exactly at the threshold along one axis (0 -> t); beyond it
        left = [0.25, -0.5, 1.0, 0.0, -0.5, 1.0, 0.25, -0.5, 1.0]
        right = [0.25, -0.5, 1.0, t, -0.5, 1.0, 0.25, -0.5, 1.0 + 1.5 * t]
        left, right = [f32(x) for x in left], [f32(x) for x in right]
        want = [distance(a, b) for a, b in zip(rows(left, dim), rows(right, dim))]
        r = siam.similarity(pb.SimilarityRequest(dim=dim, left=left, right=right), timeout=5)
        expect(r.distances[0] == 0.0 and r.scores[0] == 1.0 and r.same[0],
               f"identical: distance {r.distances[0]}, score {r.scores[0]}, same {r.same[0]}; "
               "expected 0, 1, true")
        expect(r.distances[1] == r.threshold,
               f"distance {r.distances[1]!r} (computed {want[1]!r}), expected exactly the "
               f"threshold {r.threshold!r}")
        expect(close(r.scores[1], 0.5, rel=0, abs_tol=1e-6),
               f"score at the threshold {r.scores[1]}, expected 0.5")
        expect(r.same[1], "same is false at distance == threshold, expected true (D <= t)")
        expect(not r.same[2] and r.scores[2] < 0.5,
               f"beyond the threshold: same {r.same[2]}, score {r.scores[2]}; expected false, "
               "< 0.5")
        return f"score {r.scores[1]:g} at D = threshold = {r.threshold:g}"

    c.run("Similarity: score 1 for identical, 0.5 and same at D = threshold", threshold_pair)

    # ---- (b) bad requests: INVALID_ARGUMENT naming the problem ----
    def bad_similarity(words, **fields):
        return lambda: expect_refused(
            lambda: siam.similarity(pb.SimilarityRequest(**fields), timeout=5), INVALID, words)

    nan, inf = float("nan"), float("inf")
    for name, words, fields in (
            ("left and right of different lengths", ["right", "6", "4"],
             dict(dim=2, left=[0.0] * 4, right=[0.0] * 6)),
            ("length not a multiple of dim", ["left", "dim", "5"],
             dict(dim=3, left=[0.0] * 5, right=[0.0] * 5)),
            ("no pairs", ["left", "0"], dict(dim=4)),
            ("NaN in left", ["left", "nan"],
             dict(dim=2, left=[0.0, 1.0, nan, 0.0], right=[0.0] * 4)),
            ("Inf in right", ["right", "inf"],
             dict(dim=2, left=[0.0] * 4, right=[0.0, 0.0, 0.0, -inf])),
            ("dim 0", ["dim", "0"], dict(dim=0, left=[0.0] * 4, right=[0.0] * 4)),
            ("dim above the limit", ["dim", "4097"],
             dict(dim=4097, left=[0.0] * 4097, right=[0.0] * 4097))):
        c.run(f"Similarity refuses {name} (INVALID_ARGUMENT)", bad_similarity(words, **fields))

    def train(batches, timeout=5):
        return list(siam.train(iter(batches), timeout=timeout))

    def bad_train(words, **fields):
        batch = pb.EmbeddingBatch(worker_id="raw_client.py --check", step=1, **fields)
        return lambda: expect_refused(lambda: train([batch]), INVALID, words)

    for name, words, fields in (
            ("a label of 2", ["labels", "2"],
             dict(dim=2, left=[0.0] * 4, right=[1.0] * 4, labels=[1, 2])),
            ("NaN in left", ["left", "nan"],
             dict(dim=2, left=[0.0, nan, 0.0, 0.0], right=[1.0] * 4, labels=[1, 0])),
            ("Inf in right", ["right", "inf"],
             dict(dim=2, left=[0.0] * 4, right=[1.0, 1.0, inf, 1.0], labels=[1, 0])),
            ("left of the wrong size", ["left", "3", "4"],
             dict(dim=2, left=[0.0] * 3, right=[1.0] * 4, labels=[1, 0])),
            ("right of the wrong size", ["right", "6", "4"],
             dict(dim=2, left=[0.0] * 4, right=[1.0] * 6, labels=[1, 0])),
            ("dim 0", ["dim", "0"], dict(dim=0, left=[0.0] * 4, right=[1.0] * 4, labels=[1, 0])),
            ("no pairs", ["labels"], dict(dim=2))):
        c.run(f"Train refuses {name} (INVALID_ARGUMENT)", bad_train(words, **fields))

    # ---- a good Train stream: two batches, answered in order, against the loss computed here ----
    def train_good():
        batches, wants = [], []
        for step, (B, dim) in ((7, (6, 3)), (8, (9, 3))):
            left, right = random_pairs(rng, B, dim, margin / 1.5)
            labels = [rng.randrange(2) for _ in range(B)]
            labels[0], labels[1] = 1, 0  # both labels every batch
            batches.append(pb.EmbeddingBatch(dim=dim, left=left, right=right, labels=labels,
                                             step=step, worker_id="raw_client.py --check"))
            wants.append((left, right, labels, dim))
        results = train(batches)
        expect(len(results) == len(batches),
               f"{len(results)} answers to {len(batches)} batches")
        summary = []
        for batch, res, (left, right, labels, dim) in zip(batches, results, wants):
            B = len(labels)
            loss, dists, gl, gr = contrastive(left, right, labels, dim, margin, convention)
            expect(res.step == batch.step, f"answer for step {res.step}, expected {batch.step}")
            expect(len(res.distances) == B and len(res.grad_left) == B * dim
                   and len(res.grad_right) == B * dim,
                   f"step {batch.step}: {len(res.distances)} distances, {len(res.grad_left)} + "
                   f"{len(res.grad_right)} gradient floats, expected {B} and {B * dim} each")
            expect(close(res.loss, loss), f"step {batch.step}: loss {res.loss!r}, computed {loss!r}")
            for i in range(B):
                expect(close(res.distances[i], dists[i], abs_tol=1e-6),
                       f"step {batch.step} pair {i}: distance {res.distances[i]!r}, computed "
                       f"{dists[i]!r}")
                # tolerance relative to the size of the terms the gradient is made of
                s = labels[i] if convention == "similar" else 1 - labels[i]
                diff = max(abs(left[i * dim + k] - right[i * dim + k]) for k in range(dim))
                scale = (2 * s + 2 * (1 - s) * margin / max(dists[i], 1e-6)) / B * diff
                for k in range(i * dim, (i + 1) * dim):
                    for name, got, want in (("grad_left", res.grad_left[k], gl[k]),
                                            ("grad_right", res.grad_right[k], gr[k])):
                        expect(abs(got - want) <= 1e-5 * scale + 1e-12,
                               f"step {batch.step} pair {i} (label {labels[i]}, D {dists[i]:.4g}):"
                               f" {name}[{k}] = {got!r}, computed {want!r}")
            summary.append(f"step {res.step} loss {res.loss:.5g}")
        return ", ".join(summary)

    c.run(f"Train: loss, distances, grad_left, grad_right = contrastive (m {margin:g}, "
          f"{convention})", train_good)

    # ---- wire encodings: Train in fp16, bf16 and int8, encoded and decoded here ----
    def train_encoded(enc):
        name = ENCODINGS[enc]
        B, dim = 12, 5
        left, right = random_pairs(rng, B, dim, margin / 1.5)
        labels = [rng.randrange(2) for _ in range(B)]
        labels[0], labels[1] = 1, 0
        lp, ls = encode_rows(enc, left, dim)
        rp, rs = encode_rows(enc, right, dim)
        # what the server computes with: the values as decoded
        left_d, right_d = decode_rows(enc, lp, ls, dim), decode_rows(enc, rp, rs, dim)
        batch = pb.EmbeddingBatch(dim=dim, labels=labels, step=3, worker_id="raw_client.py",
                                  encoding=enc, left_packed=lp, right_packed=rp,
                                  left_scales=ls, right_scales=rs, omit_grad_right=True)
        (res,) = train([batch])
        loss, dists, gl, _ = contrastive(left_d, right_d, labels, dim, margin, convention)
        expect(close(res.loss, loss, rel=1e-4), f"{name}: loss {res.loss!r}, computed {loss!r}")
        expect(res.grad_right_omitted and not res.grad_right and not res.grad_right_packed,
               f"{name}: grad_right sent although omit_grad_right was asked")
        expect(not res.grad_left, f"{name}: {len(res.grad_left)} fp32 gradient floats sent")
        got = decode_rows(enc, res.grad_left_packed, list(res.grad_left_scales), dim)
        expect(len(got) == B * dim, f"{name}: {len(got)} gradient values, expected {B * dim}")
        worst = 0.0
        for i in range(B):
            row = gl[i * dim:(i + 1) * dim]
            top = max(abs(g) for g in row)
            for k, want in enumerate(row):
                tol = {1: top * 2 ** -10, 2: abs(want) * 2 ** -7, 3: top / 127 * 0.51}[enc]
                tol += 1e-4 * top + 1e-12
                err = abs(got[i * dim + k] - want)
                worst = max(worst, err / (top or 1))
                expect(err <= tol, f"{name}: pair {i} grad_left[{k}] = {got[i * dim + k]!r}, "
                                   f"computed {want!r} (tolerance {tol:.3g})")
        return f"{len(res.grad_left_packed)} bytes of gradients, worst error {worst:.2g} of the " \
               f"row's largest"

    for enc in (1, 2, 3):
        c.run(f"Train in {ENCODINGS[enc]}: decoded gradients = contrastive of the decoded "
              f"embeddings, grad_right omitted", lambda enc=enc: train_encoded(enc))

    def status_encodings():
        got = list(ctx["status"].wire_encodings)
        expect(got == ["fp32", "fp16", "bf16", "int8"], f"wire_encodings {got}")
        return ", ".join(got)

    c.run("Status lists the wire encodings", status_encodings)

    def refused_encoding():
        batch = pb.EmbeddingBatch(dim=2, labels=[1, 0], left=[0.0] * 4, right=[1.0] * 4,
                                  encoding=9)
        return expect_refused(lambda: train([batch]), grpc.StatusCode.FAILED_PRECONDITION,
                              ["encoding", "9", "fp32, fp16, bf16, int8"])

    c.run("Train refuses an unknown encoding (FAILED_PRECONDITION naming the accepted)",
          refused_encoding)
    lp2, ls2 = encode_rows(3, [0.5, -1.0, 0.25, 2.0], 2)
    for name, words, fields in (
            ("fp16 bytes of the wrong length", ["left_packed", "7 bytes", "8"],
             dict(encoding=1, left_packed=b"\0" * 7, right_packed=b"\0" * 8,
                  left_scales=[1.0, 1.0], right_scales=[1.0, 1.0])),
            ("an int8 scale of 0", ["right_packed", "scale of pair 1", "0"],
             dict(encoding=3, left_packed=lp2, right_packed=lp2, left_scales=ls2,
                  right_scales=[ls2[0], 0.0])),
            ("a negative int8 scale", ["left_packed", "scale", "-1"],
             dict(encoding=3, left_packed=lp2, right_packed=lp2, left_scales=[-1.0, 1.0],
                  right_scales=ls2)),
            ("a NaN fp16 scale", ["scale", "nan"],
             dict(encoding=1, left_packed=b"\0" * 8, right_packed=b"\0" * 8,
                  left_scales=[nan, 1.0], right_scales=[1.0, 1.0])),
            ("an fp16 infinity", ["left_packed", "inf"],
             dict(encoding=1, left_packed=b"\0\x7c" + b"\0" * 6, right_packed=b"\0" * 8,
                  left_scales=[1.0, 1.0], right_scales=[1.0, 1.0])),
            ("int8 without scales", ["left_packed", "0 scales", "expected 2"],
             dict(encoding=3, left_packed=lp2, right_packed=lp2)),
            ("an int8 batch with a label of 2", ["labels[1]", "2", "0 or 1"],
             dict(encoding=3, left_packed=lp2, right_packed=lp2, left_scales=ls2,
                  right_scales=ls2, labels=[1, 2])),
            ("fp32 with packed bytes", ["left_packed", "fp32"],
             dict(left=[0.0] * 4, right=[1.0] * 4, left_packed=b"\0" * 16)),
            ("bf16 with fp32 floats too", ["left", "bf16", "left_packed"],
             dict(encoding=2, left=[0.0] * 4, left_packed=b"\0" * 8, right_packed=b"\0" * 8))):
        c.run(f"Train refuses {name} (INVALID_ARGUMENT)",
              bad_train(words, **{"dim": 2, "labels": [1, 0], **fields}))

    def set_encoded():
        n, dim = 8, 4
        emb = [f32(rng.uniform(-1, 1)) for _ in range(n * dim)]
        packed, scales = encode_rows(3, emb, dim)
        q = pb.EmbeddingSet(dim=dim, groups=[1, 1, 2, 2, 3, 3, 4, 4], step=1, encoding=3,
                            embeddings_packed=packed, embeddings_scales=scales)
        (res,) = list(siam.train_set(iter([q]), timeout=5))
        expect(not res.grad and len(res.grad_packed) == n * dim and len(res.grad_scales) == n,
               f"int8 answer: {len(res.grad)} floats, {len(res.grad_packed)} bytes, "
               f"{len(res.grad_scales)} scales")
        g = decode_rows(3, res.grad_packed, list(res.grad_scales), dim)
        expect(all(math.isfinite(x) for x in g) and any(g), "gradients not finite or all zero")
        bad = pb.EmbeddingSet(dim=dim, groups=[1, 1, 2, 2, 3, 3, 4, 4], step=2, encoding=3,
                              embeddings_packed=packed, embeddings_scales=scales[:-1] + [inf])
        expect_refused(lambda: list(siam.train_set(iter([bad]), timeout=5)), INVALID,
                       ["embeddings_packed", "scale of embedding 7", "inf"])
        return f"loss {res.loss:.4g}; an infinite scale refused"

    c.run("TrainSet in int8: packed gradient answered, a bad scale refused", set_encoded)

    # ---- (c) unknown method ----
    def unknown():
        nope = siam.channel.unary_unary("/siam.v1.Siamese/Nope")  # bytes in, bytes out
        t0 = time.monotonic()
        try:
            nope(b"", timeout=1.0)
        except grpc.RpcError as e:
            secs = time.monotonic() - t0
            expect(e.code() == grpc.StatusCode.UNIMPLEMENTED,
                   f"got {e.code().name} ({e.details()!r}) after {secs:.2f} s, "
                   "expected UNIMPLEMENTED")
            expect(secs < 1.0, f"UNIMPLEMENTED after {secs:.2f} s, expected within 1 s")
            return f"in {secs * 1000:.0f} ms"
        raise CheckFailed("the call succeeded, expected UNIMPLEMENTED")

    c.run("unknown method /siam.v1.Siamese/Nope: UNIMPLEMENTED within 1 s", unknown)

    # ---- (d) health ----
    def health(service):
        r = siam.health(hpb.HealthCheckRequest(service=service), timeout=5)
        name = siam.serving_status_name(r.status)
        expect(r.status == hpb.HealthCheckResponse.SERVING, f"status {name}, expected SERVING")
        return name

    c.run("health Check '': SERVING", lambda: health(""))
    c.run("health Check 'siam.v1.Siamese': SERVING", lambda: health("siam.v1.Siamese"))
    c.run("health Check of an unknown service: NOT_FOUND",
          lambda: expect_refused(
              lambda: siam.health(hpb.HealthCheckRequest(service="no.such.Service"), timeout=5),
              grpc.StatusCode.NOT_FOUND, ["no.such.Service"]))

    print(f"{c.passed} passed, {c.failed} failed")
    return 0 if c.failed == 0 else 1


# ---------------------------------------------------------------------------------------------

def read_idx_images(path):
    """The images of an IDX3 file (gzip), as one bytes object of n*rows*cols and the shape."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 16:
        sys.exit(f"raw_client.py: {path} is truncated (no IDX header)")
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 0x00000803 or len(data) != 16 + n * rows * cols:
        sys.exit(f"raw_client.py: {path} is not an IDX3 image file of {n} images")
    return data[16:], n, rows * cols


def compare_images(siam, data_dir, pairs, as_json):
    """Similarity of test images by index, embedded on the server."""
    path = os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        sys.exit(f"raw_client.py: {path} not found (apt-get install dataset-fashion-mnist, "
                 "or give --data DIR)")
    pixels, n, size = read_idx_images(path)
    for i, j in pairs:
        if not (0 <= i < n and 0 <= j < n):
            sys.exit(f"raw_client.py: image index out of range 0..{n - 1} in {i}:{j}")
    left = b"".join(pixels[i * size:(i + 1) * size] for i, _ in pairs)
    right = b"".join(pixels[j * size:(j + 1) * size] for _, j in pairs)
    r = siam.similarity(siam.pb.SimilarityRequest(left_images=left, right_images=right),
                        timeout=30)
    out = [{"left": i, "right": j, "distance": r.distances[k], "score": r.scores[k],
            "same": bool(r.same[k])} for k, (i, j) in enumerate(pairs)]
    if as_json:
        print(json.dumps({"threshold": r.threshold, "pairs": out}))
    else:
        for o in out:
            print(f"test images {o['left']:5d} and {o['right']:5d}: distance {o['distance']:.6f}"
                  f"  score {o['score']:.3f}  {'same' if o['same'] else 'different'}")
        print(f"threshold {r.threshold:g}")
    return 0


def parse_pairs(text):
    try:
        pairs = [tuple(int(x) for x in item.split(":")) for item in text.split(",") if item]
    except ValueError:
        pairs = []
    if not pairs or any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError(f"expected pairs of test-image indices like 0:1,2:3, "
                                          f"got '{text}'")
    return pairs


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(
        description="Call siam-server's Similarity, Status and health check from Python.")
    p.add_argument("--server", default="127.0.0.1:50051", metavar="HOST:PORT",
                   help="siam-server address (default %(default)s)")
    p.add_argument("--dim", type=int, default=4, metavar="N",
                   help="embedding dimension of the demo pairs, 1..4096 (default %(default)s)")
    p.add_argument("--stubs", default=here, metavar="DIR",
                   help="directory protoc --python_out wrote siam/v1/siam_pb2.py and "
                        "grpc/health/v1/health_pb2.py into (default: beside this script)")
    p.add_argument("--check", action="store_true",
                   help="run the cross-language checks instead of the demo")
    p.add_argument("--seed", type=int, default=1, help="seed of --check's random embeddings")
    p.add_argument("--images", type=parse_pairs, metavar="I:J[,I:J...]",
                   help="compare Fashion-MNIST test images by index with the server's model")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist", metavar="DIR",
                   help="Fashion-MNIST directory for --images (default %(default)s)")
    p.add_argument("--json", action="store_true", help="--images: print JSON")
    p.add_argument("--tls-ca", metavar="PEM",
                   help="connect with TLS; the server's certificate must be signed by a CA in "
                        "this file")
    p.add_argument("--tls-cert", metavar="PEM", help="mutual TLS: this client's certificate")
    p.add_argument("--tls-key", metavar="PEM", help="mutual TLS: its private key")
    p.add_argument("--tls-server-name", metavar="NAME",
                   help="the name the server's certificate must hold (default: the host of "
                        "--server)")
    p.add_argument("--auth-token-file", metavar="PATH",
                   help="send 'authorization: Bearer <token>' (the file's first line) on every "
                        "call")
    args = p.parse_args()
    if not 1 <= args.dim <= 4096:
        p.error(f"--dim {args.dim} is out of range 1..4096")
    if (args.tls_cert or args.tls_key or args.tls_server_name) and not args.tls_ca:
        p.error("--tls-cert, --tls-key and --tls-server-name need --tls-ca")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("mutual TLS needs both --tls-cert and --tls-key")

    pb, health_pb = load_stubs(args.stubs)
    token = read_token(args.auth_token_file) if args.auth_token_file else None
    channel = connect(args.server, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
                      tls_key=args.tls_key, server_name=args.tls_server_name, token=token)
    siam = Siam(channel, pb, health_pb)
    try:
        if args.images:
            return compare_images(siam, args.data, args.images, args.json)
        return check(siam, args.seed) if args.check else demo(siam, args.server, args.dim)
    except grpc.RpcError as e:
        print(f"raw_client.py: call failed: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    finally:
        channel.close()


if __name__ == "__main__":
    sys.exit(main())
