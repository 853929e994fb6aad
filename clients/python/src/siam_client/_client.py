"""Client: siam-server's Similarity, Search, AddToGallery, Status and health check as Python
calls."""

import math
import numbers
import os

import grpc

from ._errors import from_rpc_error
from ._types import gallery_add_from, search_from, similarity_from, status_from

try:
    from ._generated.grpc.health.v1 import health_pb2
    from ._generated.siam.v1 import siam_pb2
except ImportError as e:  # pragma: no cover - a source tree that was never built
    raise ImportError("siam_client's message classes are missing: install the package (pip "
                      "install --no-build-isolation ./clients/python), whose build generates "
                      f"them with protoc; importing it from the source tree does not ({e})") from e

IMAGE_BYTES = 28 * 28  # one Fashion-MNIST image, grey levels 0..255, row-major
# Images of other models: Status().input_shape "HxWxC" says how many bytes one image has.


def _method_paths(file_descriptor, service):
    """{"Similarity": "/siam.v1.Siamese/Similarity", ...} from the generated descriptor."""
    s = file_descriptor.services_by_name[service]
    return {m.name: f"/{s.full_name}/{m.name}" for m in s.methods}


SIAM_METHODS = _method_paths(siam_pb2.DESCRIPTOR, "Siamese")
HEALTH_METHODS = _method_paths(health_pb2.DESCRIPTOR, "Health")


def _pem(value, what):
    """PEM bytes from a path (str or os.PathLike) or from the bytes themselves."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    try:
        with open(os.fspath(value), "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{what} {value}: {e.strerror}") from e


def _as_list(x, what):
    """x as Python numbers or nested lists: numpy arrays, array.array and memoryviews through
    tolist(), other buffers through memoryview, sequences as they are."""
    if isinstance(x, (str, bytes, bytearray)):
        raise TypeError(f"{what}: expected numbers, got {type(x).__name__}")
    if hasattr(x, "tolist"):
        return x.tolist()
    try:
        return memoryview(x).tolist()
    except TypeError:
        pass
    try:
        return list(x)
    except TypeError:
        raise TypeError(f"{what}: expected a sequence of numbers or of rows, got "
                        f"{type(x).__name__}") from None


def _flatten(v, what, out):
    for i, item in enumerate(v):
        if isinstance(item, numbers.Real):
            out.append(item)
        else:
            _flatten(_as_list(item, f"{what}[{i}]"), f"{what}[{i}]", out)
    return out


def _embeddings(x, what, dim):
    """(flat floats, dim) of one embedding (1-D: one pair) or a batch of rows (2-D). With dim
    given the values are flattened and sent as they are: the server checks the sizes."""
    v = _as_list(x, what)
    if dim is None:
        if v and not isinstance(v[0], numbers.Real):
            first = _as_list(v[0], f"{what}[0]")
            dim = len(first)
        else:
            dim = len(v)
    flat = _flatten(v, what, [])
    for i, f in enumerate(flat):
        if isinstance(f, bool) or not isinstance(f, numbers.Real):
            raise TypeError(f"{what}: value {i} is {type(f).__name__}, not a number")
    return [float(f) for f in flat], dim


def _image_bytes(x, what):
    """Raw grey levels: bytes as they are, a uint8 array through tobytes(), a list of images
    (each bytes or an array), or numbers 0..255 (nested lists of any shape: images are H*W*C
    values each, row-major, 784 for 28x28x1)."""
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    if str(getattr(x, "dtype", "")) == "uint8" and hasattr(x, "tobytes"):
        return x.tobytes()
    if isinstance(x, (list, tuple)) and any(
            isinstance(i, (bytes, bytearray, memoryview)) or hasattr(i, "tobytes") for i in x):
        # a list of images, each bytes or an array (of any dtype: its levels are checked)
        return b"".join(_image_bytes(item, f"{what}[{i}]") for i, item in enumerate(x))
    flat = _flatten(_as_list(x, what), what, [])
    for i, p in enumerate(flat):
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or not 0 <= p <= 255:
            raise ValueError(f"{what}: pixel {i} is {p!r}; images are grey levels 0..255 "
                             "(integers)")
    return bytes(flat)


def _shape_bytes(shape):
    """H*W*C of an input shape "HxWxC"; 0 when there is none."""
    try:
        h, w, c = (int(v) for v in shape.split("x"))
        return h * w * c
    except ValueError:
        return 0


def _image_count(x):
    """How many images x holds when that is clear without the image size: a list or tuple of
    images, or an array of 3 or more dimensions; None otherwise (one flat buffer)."""
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) >= 3:
        return int(shape[0])
    if isinstance(x, (list, tuple)) and x and not isinstance(x[0], numbers.Real):
        return len(x)
    return None


class Client:
    """A connection to one siam-server.

        with Client("127.0.0.1:50051") as siam:
            r = siam.similarity(embeddings=([0.0, 0.0], [3.0, 4.0]))
            r.distances  # [5.0]

    target       "host:port"
    token        sent as "authorization: Bearer <token>" with every call (siam-server
                 --auth-token-file); never logged or put in an error
    tls_ca       turns TLS on: the CA certificate(s) the server's certificate must be signed by
                 (a path, or the PEM bytes)
    tls_cert, tls_key   this client's certificate and key, for mutual TLS (both or neither)
    server_name  the name the server's certificate must hold, instead of target's host
    timeout      seconds each call may take (its gRPC deadline); each method takes its own too
    max_message_mb  largest message either way (siam-server's --max-message-mb, default 16)

    Every failed call raises a siam_client.SiamError subclass (InvalidArgument, Unavailable,
    Unauthenticated, DeadlineExceeded, ...) with .code and the server's .message."""

    def __init__(self, target, *, token=None, tls_ca=None, tls_cert=None, tls_key=None,
                 server_name=None, timeout=10.0, max_message_mb=16):
        if not isinstance(target, str) or not target:
            raise ValueError("target must be 'host:port'")
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("mutual TLS needs both tls_cert and tls_key")
        if (tls_cert is not None or server_name) and tls_ca is None:
            raise ValueError("tls_cert, tls_key and server_name need tls_ca (TLS)")
        if token is not None and (not isinstance(token, str) or not token or
                                  any(not 0x21 <= ord(c) <= 0x7e for c in token)):
            raise ValueError("token must be 1 or more printable ASCII characters without spaces")
        if not (isinstance(timeout, numbers.Real) and timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.target = target
        self.timeout = float(timeout)
        limit = int(max_message_mb) << 20
        options = [("grpc.max_receive_message_length", limit),
                   ("grpc.max_send_message_length", limit)]
        if tls_ca is not None:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_pem(tls_ca, "tls_ca"),
                private_key=_pem(tls_key, "tls_key"),
                certificate_chain=_pem(tls_cert, "tls_cert"))
            if server_name:
                options.append(("grpc.ssl_target_name_override", server_name))
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        # a tuple: grpc copies it into each call; the token is in no repr or message
        self._metadata = (("authorization", "Bearer " + token),) if token else ()
        self._similarity = self._unary(SIAM_METHODS["Similarity"], siam_pb2.SimilarityRequest,
                                       siam_pb2.SimilarityResponse)
        self._status = self._unary(SIAM_METHODS["Status"], siam_pb2.StatusRequest,
                                   siam_pb2.StatusResponse)
        self._health = self._unary(HEALTH_METHODS["Check"], health_pb2.HealthCheckRequest,
                                   health_pb2.HealthCheckResponse)
        self._search = self._unary(SIAM_METHODS["Search"], siam_pb2.SearchRequest,
                                   siam_pb2.SearchResponse)
        self._add = self._unary(SIAM_METHODS["AddToGallery"], siam_pb2.GalleryAddRequest,
                                siam_pb2.GalleryAddResponse)

    def _unary(self, path, request_cls, response_cls):
        return self._channel.unary_unary(path, request_serializer=request_cls.SerializeToString,
                                         response_deserializer=response_cls.FromString)

    def __repr__(self):
        return f"siam_client.Client({self.target!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def _call(self, name, multicallable, request, timeout):
        try:
            return multicallable(request, timeout=self.timeout if timeout is None else timeout,
                                 metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e, name) from e

    def status(self, *, timeout=None):
        """The server's Status: version, loss settings, model, round, workers, checkpoints."""
        return status_from(self._call("Status", self._status, siam_pb2.StatusRequest(), timeout))

    def health(self, service="", *, timeout=None):
        """The gRPC health check of the server ("") or of a service ("siam.v1.Siamese"):
        "SERVING", or NotFound for a service the server does not have."""
        r = self._call("Check", self._health, health_pb2.HealthCheckRequest(service=service),
                       timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    def similarity(self, *, embeddings=None, images=None, dim=None, timeout=None):
        """Distances, scores and same/different of pairs, in the order given.

        embeddings=(left, right): one embedding each (a pair), or batches of rows (n x dim):
            lists, tuples, numpy arrays, array.array, anything with tolist() or the buffer
            protocol. dim=N sends flat values as they are, N per embedding.
        images=(left, right): 28x28 Fashion-MNIST images, grey levels 0..255: bytes of n x 784,
            uint8 arrays, or nested lists of integers; the server embeds them with its global
            model (FailedPrecondition until it has one).

        Returns a SimilarityResult; the server refuses bad sizes, NaN or Inf with
        InvalidArgument naming the field."""
        if (embeddings is None) == (images is None):
            raise ValueError("give embeddings=(left, right) or images=(left, right), not both")
        pair = embeddings if embeddings is not None else images
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError("embeddings and images are a pair: (left, right)")
        if embeddings is not None:
            left, d = _embeddings(pair[0], "left", dim)
            right, _ = _embeddings(pair[1], "right", d)
            request = siam_pb2.SimilarityRequest(dim=d, left=left, right=right)
        else:
            request = siam_pb2.SimilarityRequest(left_images=_image_bytes(pair[0], "left"),
                                                 right_images=_image_bytes(pair[1], "right"))
        return similarity_from(self._call("Similarity", self._similarity, request, timeout))

    def search(self, *, images=None, embeddings=None, k=5, dim=None, timeout=None):
        """Identification: the k nearest items of the server's gallery to each query.

        images=...: query images of the server's model's input shape (Status().input_shape,
            "28x28x1" for every builder: 784 bytes each), grey levels 0..255: bytes of
            n x H*W*C, a uint8 array (n, H, W), a list of images (each bytes or nested lists of
            integers). The server embeds them with its global model.
        embeddings=...: query embeddings, one (1-D) or rows (n x dim), of the gallery's
            dimension; dim=N sends flat values as they are, N per query.
        k: matches per query, 1..64 (the server refuses more).

        Returns SearchResults: per query (in order) a SearchResult with .matches, a list of
        SearchMatch(id, label, distance, score) nearest first, .predicted_label (the
        distance-weighted vote of the matches) and .confidence (its share of the vote); and
        .model_round, the one model round the whole answer was computed with.
        FailedPrecondition before the server has a model or while its gallery is empty;
        InvalidArgument for images of the wrong size, a wrong dim, NaN, or k out of range."""
        if (images is None) == (embeddings is None):
            raise ValueError("give images=... or embeddings=..., not both")
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"k must be an integer, got {type(k).__name__}")
        if k < 1:
            raise ValueError(f"k must be 1 or more (matches per query), got {k}")
        if embeddings is not None:
            flat, d = _embeddings(embeddings, "embeddings", dim)
            request = siam_pb2.SearchRequest(dim=d, embeddings=flat, k=int(k))
        else:
            request = siam_pb2.SearchRequest(images=_image_bytes(images, "images"), k=int(k))
        return search_from(self._call("Search", self._search, request, timeout))

    def add_to_gallery(self, images, labels, *, timeout=None):
        """Adds labelled images to the server's gallery (the few-shot case: a handful of images
        of a class the model never saw); they are searchable when this returns.

        images: as search()'s images (of the model's input shape).
        labels: one label per image (a list of str: a class number such as "7" or a name; valid
            UTF-8, 1..64 bytes, no control characters), or one str for every image (for images
            given as one buffer, the count comes from the server's input shape: one Status call).

        Returns GalleryAddResult: .ids (the ids given to the images, in order; iterating it
        gives them too), .gallery_size after the call and .model_round it is embedded with.
        ResourceExhausted when the gallery would pass its size limit (siam-server
        --gallery-max); with tokens on, the call needs the training token."""
        data = _image_bytes(images, "images")
        if isinstance(labels, str):
            n = _image_count(images)
            if n is None:  # one flat buffer: as many images as the model's input shape gives
                size = _shape_bytes(self.status(timeout=timeout).input_shape)
                if not size or len(data) % size:
                    raise ValueError("one label for all: give images as a list of images or an "
                                     "array (n, H, W), or a list of labels, one per image (the "
                                     "server's input shape does not divide the bytes given)")
                n = len(data) // size
            labels = [labels] * n
        else:
            labels = list(_as_list(labels, "labels"))
            for i, lab in enumerate(labels):
                if not isinstance(lab, str):
                    raise TypeError(f"labels[{i}] is {type(lab).__name__}, not a str")
        request = siam_pb2.GalleryAddRequest(images=data, labels=labels)
        return gallery_add_from(self._call("AddToGallery", self._add, request, timeout))

    @property
    def channel(self):
        """The grpc.Channel, for calls this class does not wrap (they need the token's metadata
        themselves)."""
        return self._channel
