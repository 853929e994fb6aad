"""Plain results: dataclasses of Python numbers, strings and lists (no protobuf objects)."""

from dataclasses import dataclass, field
from typing import List


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
    traffic: List[RpcTraffic] = field(default_factory=list)
    traffic_seconds: float = 0.0


_LISTS = ("workers", "traffic")


def _plain(message, cls):
    """cls built from the protobuf message's fields of the same names (lists apart)."""
    return cls(**{f: getattr(message, f) for f in cls.__dataclass_fields__ if f not in _LISTS})


def status_from(response):
    s = _plain(response, Status)
    s.workers = [_plain(w, WorkerStatus) for w in response.workers]
    s.traffic = [_plain(t, RpcTraffic) for t in response.traffic]
    return s


def similarity_from(response):
    return SimilarityResult(distances=list(response.distances), scores=list(response.scores),
                            same=list(response.same), threshold=response.threshold)
