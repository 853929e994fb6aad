"""siam_client: call siam-server from Python.

    from siam_client import Client
    with Client("127.0.0.1:50051") as siam:
        print(siam.status().version, siam.health())
        print(siam.similarity(embeddings=([0.0, 0.0], [3.0, 4.0])).distances)  # [5.0]
        ids = siam.add_to_gallery(five_images, "my-class").ids   # few-shot: a new class
        print(siam.search(images=query, k=5)[0].predicted_label)  # "my-class"

Errors are SiamError subclasses carrying the gRPC code and the server's message."""

from ._client import IMAGE_BYTES, Client
from ._errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    SiamError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    error_for,
)
from ._types import (
    GalleryAddResult,
    RpcTraffic,
    SearchMatch,
    SearchResult,
    SearchResults,
    SimilarityResult,
    Status,
    WorkerStatus,
)

__version__ = "0.1.0"

__all__ = [
    "Client", "IMAGE_BYTES", "RpcTraffic", "SimilarityResult", "Status", "WorkerStatus",
    "SearchMatch", "SearchResult", "SearchResults", "GalleryAddResult", "SiamError",
    "Aborted", "AlreadyExists", "Cancelled", "DataLoss", "DeadlineExceeded", "FailedPrecondition",
    "Internal", "InvalidArgument", "NotFound", "OutOfRange", "PermissionDenied",
    "ResourceExhausted", "Unauthenticated", "Unavailable", "Unimplemented", "Unknown",
    "error_for",
]
