"""The SQS/SNS listener (default 127.0.0.1:9324): HTTP in (``aws/http.py``),
:class:`~dovecote.aws.gateway.Gateway` out.

A request over ``aws_max_request_bytes`` is refused with 413 before its body
is read. GET requests for the files the services publish (the SNS signing
certificate) are answered from ``AwsServices.static``; every other request
is an AWS API call, whatever its path (query clients post to queue URLs).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from dovecote.aws.errors import AwsError
from dovecote.aws.gateway import Gateway, parse_credentials
from dovecote.aws.http import Answer, HttpConnection, serve
from dovecote.aws.protocol import encode_error, header, request_protocol
from dovecote.aws.services import AwsServices

CLOSE_GRACE = 1.0  # seconds open requests get to finish when the listener closes


class AwsListener:
    def __init__(
        self, server: asyncio.Server, connections: set[HttpConnection], services: AwsServices
    ) -> None:
        self._server = server
        self._connections = connections
        self.services = services

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    def admin_objects(self) -> dict[str, list[dict[str, Any]]]:
        """What the admin API shows of this listener's own objects."""
        return {"sns_topics": self.services.sns_topics()}

    async def close(self) -> None:
        self._server.close()
        for connection in list(self._connections):
            connection.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), CLOSE_GRACE)
        await self.services.close()


async def start_listener(broker: Any, host: str, port: int) -> AwsListener:
    config = broker.config
    core = broker.core
    services = AwsServices(core, config)
    await services.start()
    gateway = Gateway(
        services.by_name,
        account=config.aws_account_id,
        default_region=config.aws_region,
        credentials=parse_credentials(config.aws_credentials),
    )
    limit = config.aws_max_request_bytes

    async def handle(method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        if method == "GET":
            path = target.partition("?")[0]
            if path in services.static:
                content_type, data = services.static[path]()
                return 200, {"Content-Type": content_type}, data
        host_header = header(headers, "host")
        base_url = f"http://{host_header or f'{host}:{port}'}"
        return await gateway.handle(method, target, headers, body, base_url)

    def too_large(headers: dict[str, str]) -> Answer:
        error = AwsError(
            "RequestEntityTooLarge", f"The request is larger than {limit} bytes.", status=413
        )
        return encode_error(None, request_protocol(headers), error)

    server, connections = await serve(
        handle,
        too_large,
        host,
        port,
        max_body=limit,
        budget=core.memory,
        clock=core.clock,
        stall_timeout=core.config.request_stall_timeout_ms / 1000,
    )
    return AwsListener(server, connections, services)
