"""Plain results: dataclasses of Python numbers, strings and lists (no protobuf objects)."""

from dataclasses import dataclass, field
from typing import List, NamedTuple


@dataclass
class SimilarityResult:
    """Similarity of n pairs: distances, scores (1 at distance 0, 0.5 at the threshold) and
    same (distance <= threshold), one per pair, in the order sent."""

    distances: List[float]
    scores: List[float]
    same: List[bool]
    threshold: float

    def __len__(self):
        return len(self.distances)


@dataclass
class WorkerStatus:
    worker_id: str
    last_seen_seconds_ago: float
    pairs_trained: int
    live: bool
    last_round: int


@dataclass
class RpcTraffic:
    """What the server moved on one RPC since it started: calls, and the messages and their
    bytes as serialized protobuf (not gRPC's, HTTP/2's or TCP's own bytes)."""

    method: str
    calls: int
    messages_received: int
    bytes_received: int
    messages_sent: int
    bytes_sent: int


@dataclass
class Status:
    """The server's StatusResponse (siam.proto documents every field)."""

    version: str
    margin: float
    label_convention: str
    model_spec: str
    round: int
    global_step: int
    workers: List[WorkerStatus] = field(default_factory=list)
    min_workers: int = 0
    joined_workers: int = 0
    waiting: str = ""
    sync_timeout_seconds: float = 0.0
    checkpoint_path: str = ""
    checkpoint_round: int = 0
    checkpoint_unix_time: float = 0.0
    checkpoint_failures: int = 0
    checkpoint_failed_round: int = 0
    checkpoint_failed_unix_time: float = 0.0
    checkpoint_error: str = ""
    loss: str = ""
    gallery_size: int = 0
    gallery_round: int = 0
    input_shape: str = ""
    gallery_embedded: int = 0
    wire_encodings: List[str] = field(default_factory=list)
    traffic: List[RpcTraffic] = field(default_factory=list)
    traffic_seconds: float = 0.0
    sync_encodings: List[str] = field(default_factory=list)


class SearchMatch(NamedTuple):
    """One gallery item near a query: its id, label, Euclidean distance and score (1 at distance
    0, 0.5 at the server's threshold)."""

    id: int
    label: str
    distance: float
    score: float


@dataclass
class SearchResult:
    """One query's answer: its nearest gallery items, nearest first, and the label of their
    distance-weighted vote with that label's share of the vote (confidence, in (0, 1])."""

    matches: List[SearchMatch]
    predicted_label: str
    confidence: float


@dataclass
class SearchResults:
    """Search's answer: one SearchResult per query in the order sent, the model round the gallery
    and the queries were embedded with (one version for the whole answer) and the gallery's size.
    Iterating, len() and [i] go over the results."""

    results: List[SearchResult]
    model_round: int
    gallery_size: int

    def __len__(self):
        return len(self.results)

    def __iter__(self):
        return iter(self.results)

    def __getitem__(self, i):
        return self.results[i]


@dataclass
class GalleryAddResult:
    """AddToGallery's answer: the ids given to the images, in order, the gallery's size after
    the call and the model round it is embedded with. Iterating, len() and [i] go over the ids."""

    ids: List[int]
    gallery_size: int
    model_round: int

    def __len__(self):
        return len(self.ids)

    def __iter__(self):
        return iter(self.ids)

    def __getitem__(self, i):
        return self.ids[i]


_LISTS = ("workers", "traffic", "wire_encodings", "sync_encodings")


def _plain(message, cls):
    """cls built from the protobuf message's fields of the same names (lists apart)."""
    return cls(**{f: getattr(message, f) for f in cls.__dataclass_fields__ if f not in _LISTS})


def status_from(response):
    s = _plain(response, Status)
    s.workers = [_plain(w, WorkerStatus) for w in response.workers]
    s.wire_encodings = list(response.wire_encodings)
    s.sync_encodings = list(response.sync_encodings)
    s.traffic = [_plain(t, RpcTraffic) for t in response.traffic]
    return s


def similarity_from(response):
    return SimilarityResult(distances=list(response.distances), scores=list(response.scores),
                            same=list(response.same), threshold=response.threshold)


def search_from(response):
    return SearchResults(
        results=[SearchResult(matches=[SearchMatch(m.id, m.label, m.distance, m.score)
                                       for m in r.matches],
                              predicted_label=r.predicted_label, confidence=r.confidence)
                 for r in response.results],
        model_round=response.model_round, gallery_size=response.gallery_size)


def gallery_add_from(response):
    return GalleryAddResult(ids=list(response.ids), gallery_size=response.gallery_size,
                            model_round=response.model_round)
