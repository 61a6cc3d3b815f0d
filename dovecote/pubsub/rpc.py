"""gRPC plumbing for the Pub/Sub listener: services as tables of handlers.

google-cloud-pubsub ships its messages as proto-plus types whose ``.pb()`` is
the plain protobuf class, but no service descriptors; so each service is a
:class:`ServiceTable` naming its methods, their message classes and the
coroutine that serves each. The server registers one generic handler per
table; a method nobody serves answers UNIMPLEMENTED (grpc does that itself).

A handler raises :class:`PubsubError` with the status code and message
Google's service would send; anything else is a bug and answers INTERNAL
without taking the listener down.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

log = logging.getLogger("dovecote.pubsub")

UnaryHandler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
StreamHandler = Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], AsyncIterator[Any]]


class PubsubError(Exception):
    """An RPC failure to send as a gRPC status (optionally with rich details:
    ``details`` is a ``google.rpc.Status`` whose packed details grpcio-status
    sends in the ``grpc-status-details-bin`` trailer)."""

    def __init__(self, code: grpc.StatusCode, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def not_found(kind: str, name: str) -> PubsubError:
    """Google's NOT_FOUND text, e.g. ``Resource not found (resource=my-topic).``"""
    return PubsubError(grpc.StatusCode.NOT_FOUND, f"{kind} not found (resource={name}).")


def already_exists(name: str) -> PubsubError:
    return PubsubError(
        grpc.StatusCode.ALREADY_EXISTS, f"Resource already exists in the project (resource={name})."
    )


def invalid(message: str) -> PubsubError:
    return PubsubError(grpc.StatusCode.INVALID_ARGUMENT, message)


@dataclass(frozen=True, slots=True)
class Malformed:
    """A request whose bytes are not its message: the handler is not called
    and the client gets INVALID_ARGUMENT (grpc itself would answer UNKNOWN)."""

    error: str


@dataclass(frozen=True, slots=True)
class Sized:
    """A request with the length of the bytes it came in: a method whose limits
    count the request's size gets this, because ``ByteSize()`` encodes the
    whole message again (1.5 ms for a 1 MB Publish)."""

    message: Any
    size: int


def _deserializer(cls: Any, sized: bool = False) -> Callable[[bytes], Any]:
    from_string = cls.FromString

    def parse(data: bytes) -> Any:
        try:
            message = from_string(data)
        except Exception as err:  # DecodeError, or what upb raises for bad UTF-8
            return Malformed(str(err))
        return Sized(message, len(data)) if sized else message

    return parse


MALFORMED_TEXT = "The request could not be parsed: {}"


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC: its message classes (plain protobuf) and its kind."""

    request: type
    response: type
    stream_stream: bool = False
    sized: bool = False  # the handler gets a Sized (the request and its length)


@dataclass(slots=True)
class ServiceTable:
    """A gRPC service: its full name and method name -> (method, handler)."""

    name: str  # e.g. google.pubsub.v1.Publisher
    methods: Mapping[str, Method]
    handlers: dict[str, UnaryHandler | StreamHandler]

    def generic_handler(self) -> grpc.GenericRpcHandler:
        handlers: dict[str, grpc.RpcMethodHandler] = {}
        for method_name, handler in self.handlers.items():
            method = self.methods[method_name]
            if method.stream_stream:
                handlers[method_name] = grpc.stream_stream_rpc_method_handler(
                    _guard_stream(handler),  # type: ignore[arg-type]
                    request_deserializer=_deserializer(method.request),
                    response_serializer=method.response.SerializeToString,
                )
            else:
                handlers[method_name] = grpc.unary_unary_rpc_method_handler(
                    _guard_unary(handler),  # type: ignore[arg-type]
                    request_deserializer=_deserializer(method.request, method.sized),
                    response_serializer=method.response.SerializeToString,
                )
        return grpc.method_handlers_generic_handler(self.name, handlers)


async def abort_with(context: grpc.aio.ServicerContext, error: PubsubError) -> None:
    """End the RPC with ``error``'s status (and rich details, if any)."""
    if error.details is not None:
        from grpc_status import rpc_status

        status = rpc_status.to_status(error.details)
        await context.abort(status.code, status.details, status.trailing_metadata)
    await context.abort(error.code, error.message)


def _guard_unary(handler: UnaryHandler) -> UnaryHandler:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if type(request) is Malformed:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_TEXT.format(request.error)
            )
        try:
            return await handler(request, context)
        except PubsubError as error:
            await abort_with(context, error)
        except Exception:
            log.exception("pubsub handler %s failed", getattr(handler, "__qualname__", handler))
            await context.abort(grpc.StatusCode.INTERNAL, "Internal error.")

    return guarded


def _guard_stream(handler: StreamHandler) -> StreamHandler:
    async def guarded(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        try:
            async for response in handler(_checked(requests), context):
                yield response
        except PubsubError as error:
            await abort_with(context, error)
        except Exception:
            log.exception("pubsub stream %s failed", getattr(handler, "__qualname__", handler))
            await context.abort(grpc.StatusCode.INTERNAL, "Internal error.")

    return guarded


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The stream's requests; a malformed one ends the call with INVALID_ARGUMENT."""
    async for request in requests:
        if type(request) is Malformed:
            raise PubsubError(
                grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_TEXT.format(request.error)
            )
        yield request
