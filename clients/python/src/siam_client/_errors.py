"""Typed errors: every failed call raises a SiamError subclass chosen by its gRPC status code."""

import grpc


class SiamError(Exception):
    """A call to siam-server failed.

    code     the grpc.StatusCode the server (or gRPC, e.g. UNAVAILABLE, DEADLINE_EXCEEDED) sent
    message  the status message: siam-server's names the field and the value at fault
    method   the RPC, e.g. "Similarity"
    """

    def __init__(self, code, message, method=""):
        self.code = code
        self.message = message or ""
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code.name}: {self.message}")


class Cancelled(SiamError):
    """CANCELLED: the call was cancelled."""


class Unknown(SiamError):
    """UNKNOWN."""


class InvalidArgument(SiamError):
    """INVALID_ARGUMENT: a malformed request (sizes, dim, NaN/Inf, image lengths)."""


class DeadlineExceeded(SiamError):
    """DEADLINE_EXCEEDED: no answer within the Client's timeout."""


class NotFound(SiamError):
    """NOT_FOUND, e.g. a health check of an unknown service."""


class AlreadyExists(SiamError):
    """ALREADY_EXISTS: two workers with one name in a round."""


class PermissionDenied(SiamError):
    """PERMISSION_DENIED."""


class ResourceExhausted(SiamError):
    """RESOURCE_EXHAUSTED: a message above the server's size limit, or a table full."""


class FailedPrecondition(SiamError):
    """FAILED_PRECONDITION, e.g. image Similarity before the server has a model."""


class Aborted(SiamError):
    """ABORTED."""


class OutOfRange(SiamError):
    """OUT_OF_RANGE."""


class Unimplemented(SiamError):
    """UNIMPLEMENTED: a method this server does not have (an older server)."""


class Internal(SiamError):
    """INTERNAL."""


class Unavailable(SiamError):
    """UNAVAILABLE: the server cannot be reached, is shutting down, or a TLS handshake failed."""


class DataLoss(SiamError):
    """DATA_LOSS."""


class Unauthenticated(SiamError):
    """UNAUTHENTICATED: no bearer token, or the wrong one."""


_BY_CODE = {
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNKNOWN: Unknown,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


def error_for(code, message, method=""):
    """The SiamError subclass instance for a grpc.StatusCode."""
    return _BY_CODE.get(code, SiamError)(code, message, method)


def from_rpc_error(e, method=""):
    """The SiamError for a grpc.RpcError raised by a call."""
    code = e.code() if callable(getattr(e, "code", None)) else grpc.StatusCode.UNKNOWN
    details = e.details() if callable(getattr(e, "details", None)) else str(e)
    return error_for(code or grpc.StatusCode.UNKNOWN, details, method)
