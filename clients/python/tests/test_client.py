"""siam_client against real siam-server processes (tests/python_client_test.sh starts them and
installs the package first). Servers, from the environment:

    SIAM_TEST_SERVER        plain, --max-message-mb 1, no model
    SIAM_TEST_MODEL_SERVER  plain, --model mlp (image Similarity works)
    SIAM_TEST_GALLERY_SERVER  --model mlp --gallery-max 40, its gallery empty at the start
    SIAM_TEST_TOKEN_SERVER  --auth-token-file; the token in SIAM_TEST_TOKEN
    SIAM_TEST_TLS_SERVER    TLS (+ the same token); CA in SIAM_TEST_TLS_CA, certificate for
                            "localhost"
    SIAM_TEST_STUBS         protoc --python_out of siam.proto, for raw calls to compare with

Distances are checked against Euclidean distances computed here in plain Python, on the float32
values the wire carries. Tests whose server is not given are skipped."""

import array
import dataclasses
import importlib.util
import math
import os
import random
import struct
import unittest

import grpc

import siam_client
from siam_client import Client

SERVER = os.environ.get("SIAM_TEST_SERVER")
MODEL_SERVER = os.environ.get("SIAM_TEST_MODEL_SERVER")
TOKEN_SERVER = os.environ.get("SIAM_TEST_TOKEN_SERVER")
TOKEN = os.environ.get("SIAM_TEST_TOKEN")
TLS_SERVER = os.environ.get("SIAM_TEST_TLS_SERVER")
TLS_CA = os.environ.get("SIAM_TEST_TLS_CA")
GALLERY_SERVER = os.environ.get("SIAM_TEST_GALLERY_SERVER")
STUBS = os.environ.get("SIAM_TEST_STUBS")

try:
    import numpy
except ImportError:  # optional: the library does not need it
    numpy = None


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def euclid(a, b):
    return math.sqrt(sum((f32(x) - f32(y)) ** 2 for x, y in zip(a, b)))


def rows_of(rng, n, dim, scale=1.0):
    return [[rng.uniform(-scale, scale) for _ in range(dim)] for _ in range(n)]


def raw_similarity(target, request_fields):
    """The same request sent without the library (protoc's classes, a plain channel): the
    server's own status details, to compare the library's errors with."""
    spec = importlib.util.spec_from_file_location(
        "raw_siam_pb2", os.path.join(STUBS, "siam", "v1", "siam_pb2.py"))
    pb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pb)
    with grpc.insecure_channel(target) as ch:
        call = ch.unary_unary("/siam.v1.Siamese/Similarity",
                              request_serializer=pb.SimilarityRequest.SerializeToString,
                              response_deserializer=pb.SimilarityResponse.FromString)
        try:
            call(pb.SimilarityRequest(**request_fields), timeout=10)
        except grpc.RpcError as e:
            return e.code(), e.details()
    return grpc.StatusCode.OK, ""


class Offline(unittest.TestCase):
    """What needs no server."""

    def test_every_code_has_its_class(self):
        for code in grpc.StatusCode:
            if code == grpc.StatusCode.OK:
                continue
            e = siam_client.error_for(code, "msg", "Similarity")
            self.assertIsInstance(e, siam_client.SiamError)
            self.assertEqual(e.code, code)
            self.assertEqual(e.message, "msg")
            name = "".join(w.capitalize() for w in code.name.split("_"))
            self.assertEqual(type(e).__name__, name)
            self.assertIn("Similarity: " + code.name + ": msg", str(e))

    def test_status_has_every_field_of_the_proto(self):
        from siam_client._client import siam_pb2
        for cls, message in ((siam_client.Status, siam_pb2.StatusResponse),
                             (siam_client.WorkerStatus, siam_pb2.WorkerStatus),
                             (siam_client.RpcTraffic, siam_pb2.RpcTraffic)):
            self.assertEqual({f.name for f in dataclasses.fields(cls)},
                             set(message.DESCRIPTOR.fields_by_name), cls.__name__)

    def test_bad_arguments_are_refused_here(self):
        with self.assertRaises(ValueError):
            Client("127.0.0.1:1", token="has space")
        with self.assertRaises(ValueError):
            Client("127.0.0.1:1", tls_cert="c.pem")  # without the key, without TLS
        with self.assertRaises(ValueError):
            Client("127.0.0.1:1", timeout=0)
        with Client("127.0.0.1:1") as c:
            with self.assertRaises(ValueError):
                c.similarity(embeddings=([1.0], [1.0]), images=(b"", b""))
            with self.assertRaises(ValueError):
                c.similarity()
            with self.assertRaises(TypeError):
                c.similarity(embeddings=("ab", "cd"))
            with self.assertRaises(TypeError):
                c.similarity(embeddings=([1.0, "x"], [1.0, 2.0]))
            with self.assertRaises(ValueError):
                c.similarity(images=([[300] * 784], [[0] * 784]))
            with self.assertRaises(ValueError):
                c.search()
            with self.assertRaises(ValueError):
                c.search(images=bytes(784), embeddings=[1.0])
            with self.assertRaises(ValueError):
                c.search(images=bytes(784), k=0)  # 0 would mean the server's default
            with self.assertRaises(TypeError):
                c.search(images=bytes(784), k=True)
            with self.assertRaises(TypeError):
                c.add_to_gallery([bytes(784)], [7])

    def test_unreachable_server_is_unavailable(self):
        with Client("127.0.0.1:1", timeout=5) as c:
            with self.assertRaises(siam_client.Unavailable) as cm:
                c.status()
        self.assertEqual(cm.exception.code, grpc.StatusCode.UNAVAILABLE)


@unittest.skipUnless(SERVER, "SIAM_TEST_SERVER not set")
class Plain(unittest.TestCase):
    def setUp(self):
        self.c = Client(SERVER)
        self.rng = random.Random(7)

    def tearDown(self):
        self.c.close()

    def test_status(self):
        st = self.c.status()
        self.assertIsInstance(st, siam_client.Status)
        self.assertRegex(st.version, r"^\d+\.\d+\.\d+$")
        self.assertEqual(st.margin, 1.0)
        self.assertEqual(st.label_convention, "similar")
        self.assertIsInstance(st.workers, list)
        self.assertEqual(st.model_spec, "")
        # the server counts this call as it arrives: its Status row holds it (empty request)
        rows = {t.method: t for t in st.traffic}
        self.assertIn("/siam.v1.Siamese/Status", rows)
        self.assertIsInstance(rows["/siam.v1.Siamese/Status"], siam_client.RpcTraffic)
        self.assertGreaterEqual(rows["/siam.v1.Siamese/Status"].calls, 1)
        self.assertEqual(rows["/siam.v1.Siamese/Status"].bytes_received, 0)
        self.assertGreater(st.traffic_seconds, 0.0)

    def test_health(self):
        self.assertEqual(self.c.health(), "SERVING")
        self.assertEqual(self.c.health("siam.v1.Siamese"), "SERVING")
        with self.assertRaises(siam_client.NotFound) as cm:
            self.c.health("no.such.Service")
        self.assertIn("no.such.Service", cm.exception.message)

    def check_against_python(self, left, right, r):
        st = self.c.status()
        self.assertIsInstance(r, siam_client.SimilarityResult)
        self.assertEqual(len(r), len(left))
        self.assertEqual(r.threshold, f32(st.margin / 2))
        for i, (a, b) in enumerate(zip(left, right)):
            want = euclid(a, b)
            self.assertTrue(math.isclose(r.distances[i], want, rel_tol=1e-5, abs_tol=1e-6),
                            f"pair {i}: {r.distances[i]} vs {want}")
            score = 1.0 / (1.0 + (r.distances[i] / r.threshold) ** 2)
            self.assertAlmostEqual(r.scores[i], score, places=5)
            self.assertEqual(r.same[i], r.distances[i] <= r.threshold)
            self.assertIsInstance(r.distances[i], float)
            self.assertIsInstance(r.same[i], bool)

    def test_similarity_rows(self):
        for n, dim in ((1, 1), (40, 16), (5, 128)):
            left, right = rows_of(self.rng, n, dim), rows_of(self.rng, n, dim, 0.3)
            right[0] = list(left[0])  # an identical pair
            r = self.c.similarity(embeddings=(left, right))
            self.check_against_python(left, right, r)
            self.assertEqual((r.distances[0], r.scores[0], r.same[0]), (0.0, 1.0, True))

    def test_similarity_one_pair_and_other_containers(self):
        r = self.c.similarity(embeddings=([0.0, 0.0], [3.0, 4.0]))
        self.assertEqual(r.distances, [5.0])
        self.assertEqual(r.same, [False])
        left, right = rows_of(self.rng, 6, 3), rows_of(self.rng, 6, 3)
        flat_l = array.array("f", [x for row in left for x in row])
        flat_r = memoryview(array.array("f", [x for row in right for x in row]))
        r = self.c.similarity(embeddings=(flat_l, flat_r), dim=3)
        self.check_against_python(left, right, r)
        r = self.c.similarity(embeddings=(tuple(map(tuple, left)), (array.array("d", row)
                                                                     for row in right)))
        self.check_against_python(left, right, r)

    @unittest.skipUnless(numpy, "numpy not installed (optional)")
    def test_similarity_numpy(self):
        left = numpy.asarray(rows_of(self.rng, 8, 5), dtype=numpy.float32)
        right = numpy.asarray(rows_of(self.rng, 8, 5), dtype=numpy.float64)
        r = self.c.similarity(embeddings=(left, right))
        self.check_against_python(left.tolist(), right.tolist(), r)

    def assert_server_message(self, call, fields, cls):
        with self.assertRaises(cls) as cm:
            call()
        e = cm.exception
        self.assertIsInstance(e, siam_client.SiamError)
        if STUBS:
            code, details = raw_similarity(SERVER, fields)
            self.assertEqual((e.code, e.message), (code, details))
        return e

    def test_wrong_dim_is_invalid_argument_with_the_servers_message(self):
        left, right = rows_of(self.rng, 4, 3), rows_of(self.rng, 4, 2)
        e = self.assert_server_message(
            lambda: self.c.similarity(embeddings=(left, right)),
            {"dim": 3, "left": sum(left, []), "right": sum(right, [])}, siam_client.InvalidArgument)
        self.assertEqual(e.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("right has 8 floats", e.message)
        self.assertEqual(e.method, "Similarity")
        e = self.assert_server_message(
            lambda: self.c.similarity(embeddings=([1.0] * 5, [1.0] * 5), dim=2),
            {"dim": 2, "left": [1.0] * 5, "right": [1.0] * 5}, siam_client.InvalidArgument)
        self.assertIn("dim = 2", e.message)

    def test_nan_is_invalid_argument(self):
        e = self.assert_server_message(
            lambda: self.c.similarity(embeddings=([0.0, math.nan], [0.0, 0.0])),
            {"dim": 2, "left": [0.0, math.nan], "right": [0.0, 0.0]}, siam_client.InvalidArgument)
        self.assertIn("nan", e.message)

    def test_search_before_a_model_and_an_empty_gallery(self):
        with self.assertRaises(siam_client.FailedPrecondition) as cm:
            self.c.search(images=bytes(784))
        self.assertIn("no model", cm.exception.message)
        self.assertEqual(cm.exception.method, "Search")
        with self.assertRaises(siam_client.FailedPrecondition) as cm:
            self.c.search(embeddings=[0.5, 0.5])
        self.assertIn("gallery is empty", cm.exception.message)
        with self.assertRaises(siam_client.FailedPrecondition) as cm:
            self.c.add_to_gallery([bytes(784)], ["x"])
        self.assertEqual(cm.exception.method, "AddToGallery")
        st = self.c.status()
        self.assertEqual((st.gallery_size, st.gallery_embedded, st.input_shape), (0, 0, ""))

    def test_images_before_a_model_are_failed_precondition(self):
        with self.assertRaises(siam_client.FailedPrecondition) as cm:
            self.c.similarity(images=(bytes(784), bytes(784)))
        self.assertEqual(cm.exception.code, grpc.StatusCode.FAILED_PRECONDITION)

    def test_message_over_the_servers_limit_is_resource_exhausted(self):
        big = [0.5] * (200 * 1024)  # 800 KiB of floats each side, over --max-message-mb 1
        with self.assertRaises(siam_client.ResourceExhausted) as cm:
            self.c.similarity(embeddings=(big, big), dim=1024)
        self.assertEqual(cm.exception.code, grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_deadline(self):
        with Client(SERVER, timeout=1e-6) as c:
            with self.assertRaises(siam_client.DeadlineExceeded) as cm:
                c.status()
        self.assertEqual(cm.exception.code, grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(self.c.status(timeout=5).margin, 1.0)  # a per-call timeout

    def test_unknown_method_is_unimplemented(self):
        call = self.c.channel.unary_unary("/siam.v1.Siamese/Nope")
        with self.assertRaises(grpc.RpcError) as cm:
            call(b"", timeout=5)
        e = siam_client.error_for(cm.exception.code(), cm.exception.details())
        self.assertIsInstance(e, siam_client.Unimplemented)


@unittest.skipUnless(MODEL_SERVER, "SIAM_TEST_MODEL_SERVER not set")
class Images(unittest.TestCase):
    def test_image_similarity(self):
        rng = random.Random(3)
        a = bytes(rng.randrange(256) for _ in range(784))
        b = bytes(rng.randrange(256) for _ in range(784))
        with Client(MODEL_SERVER) as c:
            r = c.similarity(images=(a + a, a + b))
            self.assertEqual(len(r), 2)
            self.assertEqual((r.distances[0], r.scores[0], r.same[0]), (0.0, 1.0, True))
            self.assertGreater(r.distances[1], 0.0)
            nested = [[list(b[i * 28:(i + 1) * 28]) for i in range(28)]]  # one 28x28 image
            r2 = c.similarity(images=(nested, [list(a)]))  # b vs a, as lists of levels
            self.assertEqual(r2.distances, [r.distances[1]])
            if numpy:
                arr = numpy.frombuffer(a + b, dtype=numpy.uint8).reshape(2, 28, 28)
                self.assertEqual(c.similarity(images=(arr, arr)).distances, [0.0, 0.0])
            with self.assertRaises(siam_client.InvalidArgument) as cm:
                c.similarity(images=(bytes(100), bytes(100)))
            self.assertIn("784", cm.exception.message)


def weighted_vote(matches):
    """The label of the distance-weighted vote (weight 1 / (D + 1e-6)), ties to the nearest, and
    its share of the weight: what the server's predicted_label and confidence must be."""
    weight, order = {}, []
    for m in matches:
        if m.label not in weight:
            order.append(m.label)
        weight[m.label] = weight.get(m.label, 0.0) + 1.0 / (m.distance + 1e-6)
    best = max(weight.values())
    label = next(lab for lab in order if weight[lab] >= best * (1 - 1e-12))
    return label, weight[label] / sum(weight.values())


@unittest.skipUnless(GALLERY_SERVER, "SIAM_TEST_GALLERY_SERVER not set")
class Gallery(unittest.TestCase):
    """One server whose gallery starts empty: the steps run in order in one test."""

    def test_few_shot_search_and_add(self):
        rng = random.Random(11)
        image = lambda: bytes(rng.randrange(256) for _ in range(784))  # noqa: E731
        shoes = [image() for _ in range(5)]
        others = [image() for _ in range(3)]
        with Client(GALLERY_SERVER) as c:
            st = c.status()
            self.assertEqual(st.input_shape, "28x28x1")
            self.assertEqual(st.gallery_size, 0)
            with self.assertRaises(siam_client.FailedPrecondition) as cm:
                c.search(images=shoes[0])
            self.assertIn("gallery is empty", cm.exception.message)

            # few-shot: five images of a new class under one label, then three more, one each
            added = c.add_to_gallery(shoes, "shoe")
            self.assertIsInstance(added, siam_client.GalleryAddResult)
            self.assertEqual((added.ids, added.gallery_size), ([0, 1, 2, 3, 4], 5))
            self.assertEqual(list(added), added.ids)
            more = c.add_to_gallery(b"".join(others), ["x", "y", "zé"])
            self.assertEqual((more.ids, more.gallery_size), ([5, 6, 7], 8))
            self.assertEqual(more.model_round, c.status().round)
            gallery = shoes + others
            labels = ["shoe"] * 5 + ["x", "y", "zé"]

            # every item comes back with k = 8: distances against image Similarity's
            r = c.search(images=[shoes[2], others[1]], k=8)
            self.assertIsInstance(r, siam_client.SearchResults)
            self.assertEqual((len(r), r.gallery_size, r.model_round), (2, 8, c.status().round))
            threshold = c.similarity(embeddings=([0.0], [0.0])).threshold
            for q, query in enumerate((shoes[2], others[1])):
                res = r[q]
                self.assertIsInstance(res, siam_client.SearchResult)
                self.assertEqual(len(res.matches), 8)
                self.assertEqual(sorted(m.id for m in res.matches), list(range(8)))
                sim = c.similarity(images=(query * 8, b"".join(gallery)))
                for m in res.matches:
                    self.assertIsInstance(m, siam_client.SearchMatch)
                    self.assertEqual(m.label, labels[m.id])
                    want = sim.distances[m.id]
                    self.assertTrue(math.isclose(m.distance, want, rel_tol=1e-5, abs_tol=1e-6),
                                    f"query {q}, item {m.id}: Search {m.distance}, Similarity {want}")
                    self.assertAlmostEqual(m.score, 1.0 / (1.0 + (m.distance / threshold) ** 2),
                                           places=5)
                d = [m.distance for m in res.matches]
                self.assertEqual(d, sorted(d))
                label, share = weighted_vote(res.matches)
                self.assertEqual(res.predicted_label, label)
                self.assertAlmostEqual(res.confidence, share, places=5)
            self.assertEqual(r[0].matches[0][:2], (2, "shoe"))  # a query finds itself
            self.assertLessEqual(r[0].matches[0].distance, 1e-6)
            self.assertEqual(r[0].matches[0].score, 1.0)
            self.assertEqual(r[1].matches[0][:2], (6, "y"))
            self.assertEqual(r[0].predicted_label, "shoe")  # five "shoe" items among the eight
            self.assertEqual(len(c.search(images=shoes[0], k=3)[0].matches), 3)
            self.assertEqual(len(c.search(images=shoes[0])[0].matches), 5)  # k = 5 by default
            nested = [[list(shoes[4][i * 28:(i + 1) * 28]) for i in range(28)]]  # one 28x28 image
            self.assertEqual(c.search(images=nested, k=1)[0].matches[0].id, 4)
            if numpy:
                arr = numpy.frombuffer(shoes[1] + others[2], dtype=numpy.uint8).reshape(2, 28, 28)
                self.assertEqual([x.matches[0].id for x in c.search(images=arr, k=1)], [1, 7])

            # embeddings: of the gallery's dimension; the order of distances holds
            dim = int(c.status().model_spec.split("dense")[-1].split()[0])
            q = [rng.gauss(0, 1) for _ in range(dim)]
            e = c.search(embeddings=[q, [-x for x in q]], k=4)
            self.assertEqual([len(x.matches) for x in e], [4, 4])
            for x in e:
                d = [m.distance for m in x.matches]
                self.assertEqual(d, sorted(d))
            with self.assertRaises(siam_client.InvalidArgument) as cm:
                c.search(embeddings=[1.0, 2.0, 3.0])
            self.assertIn("dim", cm.exception.message)

            # what the server refuses, with its message
            with self.assertRaises(siam_client.InvalidArgument) as cm:
                c.search(images=shoes[0], k=65)
            self.assertIn("k", cm.exception.message)
            with self.assertRaises(siam_client.InvalidArgument) as cm:
                c.search(images=bytes(100))
            self.assertIn("784", cm.exception.message)
            with self.assertRaises(siam_client.InvalidArgument) as cm:
                c.add_to_gallery([shoes[0]], ["x" * 65])
            self.assertIn("labels[0]", cm.exception.message)
            with self.assertRaises(siam_client.InvalidArgument) as cm:
                c.add_to_gallery(shoes[0] + shoes[1], ["only one"])
            self.assertEqual(cm.exception.method, "AddToGallery")

            # one label for a flat buffer of two images: the count from the input shape
            two = c.add_to_gallery(image() + image(), "pair")
            self.assertEqual(len(two), 2)
            with self.assertRaises(ValueError):
                c.add_to_gallery(bytes(784 + 5), "not a whole number of images")

            # up to --gallery-max 40, then ResourceExhausted naming the limit
            self.assertEqual(c.add_to_gallery([image() for _ in range(30)], "fill").gallery_size, 40)
            with self.assertRaises(siam_client.ResourceExhausted) as cm:
                c.add_to_gallery([shoes[0]], ["one too many"])
            self.assertIn("--gallery-max", cm.exception.message)
            self.assertEqual(c.status().gallery_size, 40)


@unittest.skipUnless(TOKEN_SERVER and TOKEN, "SIAM_TEST_TOKEN_SERVER not set")
class Token(unittest.TestCase):
    def test_token(self):
        with Client(TOKEN_SERVER, token=TOKEN) as c:
            self.assertEqual(c.health(), "SERVING")
            self.assertEqual(c.similarity(embeddings=([1.0], [4.0])).distances, [3.0])
        for token in (None, "not-" + TOKEN):
            with Client(TOKEN_SERVER, token=token) as c:
                with self.assertRaises(siam_client.Unauthenticated) as cm:
                    c.status()
                self.assertEqual(cm.exception.code, grpc.StatusCode.UNAUTHENTICATED)
                self.assertNotIn(TOKEN, str(cm.exception))
                with self.assertRaises(siam_client.Unauthenticated):
                    c.add_to_gallery([bytes(784)], ["needs the token"])
        self.assertNotIn(TOKEN, repr(Client(TOKEN_SERVER, token=TOKEN)))


@unittest.skipUnless(TLS_SERVER and TLS_CA, "SIAM_TEST_TLS_SERVER not set")
class Tls(unittest.TestCase):
    def test_tls_and_token(self):
        port = TLS_SERVER.rsplit(":", 1)[1]
        for target, name in ((f"localhost:{port}", None), (f"127.0.0.1:{port}", "localhost")):
            with Client(target, tls_ca=TLS_CA, server_name=name, token=TOKEN) as c:
                self.assertEqual(c.health(), "SERVING")
                self.assertEqual(c.similarity(embeddings=([0.0], [2.0])).distances, [2.0])
        with open(TLS_CA, "rb") as f:  # the CA as bytes
            with Client(f"localhost:{port}", tls_ca=f.read(), token=TOKEN) as c:
                self.assertRegex(c.status().version, r"^\d")
        with Client(f"localhost:{port}", token=TOKEN, timeout=5) as c:  # plaintext to TLS
            with self.assertRaises(siam_client.Unavailable):
                c.status()
        with Client(f"localhost:{port}", tls_ca=TLS_CA, timeout=5) as c:  # TLS, no token
            with self.assertRaises(siam_client.Unauthenticated):
                c.status()


if __name__ == "__main__":
    unittest.main()
