"""The SQS/SNS listener (default 127.0.0.1:9324): HTTP in, :class:`Gateway` out.

aiohttp's low-level server (no router: every request goes to one handler,
which is all the AWS protocols need). A request over ``aws_max_request_bytes``
is refused with 413 before its body is read; a client that disconnects
during a long poll cancels it (nothing is leased to nobody). The SNS signing
certificate is served at ``/dovecote/sns/signing-cert.pem``.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from dovecote.admin.server import MalformedRequestFilter
from dovecote.aws.errors import AwsError
from dovecote.aws.gateway import Gateway, parse_credentials
from dovecote.aws.protocol import encode_error, request_protocol
from dovecote.aws.services import AwsServices

log = logging.getLogger("dovecote.aws")

CHUNK = 256 * 1024


def _logger() -> logging.Logger:
    logger = logging.getLogger("dovecote.aws.http")
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
    return logger


class AwsListener:
    def __init__(self, runner: web.ServerRunner, site: web.TCPSite, services: AwsServices) -> None:
        self._runner = runner
        self._site = site
        self.services = services

    @property
    def address(self) -> tuple[str, int]:
        server = self._site._server
        assert server is not None and server.sockets
        host, port = server.sockets[0].getsockname()[:2]
        return host, port

    async def close(self) -> None:
        await self.services.close()
        await self._runner.cleanup()


async def _read_body(request: web.BaseRequest, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit``."""
    length = request.content_length
    if length is not None and length > limit:
        return None
    chunks = []
    total = 0
    while True:
        chunk = await request.content.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def start_listener(broker: Any, host: str, port: int) -> AwsListener:
    config = broker.config
    services = AwsServices(broker.core, config)
    await services.start()
    gateway = Gateway(
        services.by_name,
        account=config.aws_account_id,
        default_region=config.aws_region,
        credentials=parse_credentials(config.aws_credentials),
    )
    limit = config.aws_max_request_bytes

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET" and request.path in services.static:
            content_type, body = services.static[request.path]()
            return web.Response(body=body, content_type=content_type)
        body = await _read_body(request, limit)
        headers = dict(request.headers)
        if body is None:
            error = AwsError(
                "RequestEntityTooLarge",
                f"The request is larger than {limit} bytes.",
                status=413,
            )
            status, out, data = encode_error(None, request_protocol(headers), error)
            return web.Response(status=status, headers=out, body=data)
        base_url = f"{request.scheme}://{request.host}"
        status, out, data = await gateway.handle(
            request.method, request.raw_path, headers, body, base_url
        )
        return web.Response(status=status, headers=out, body=data)

    server = web.Server(handle, handler_cancellation=True, access_log=None, logger=_logger())
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return AwsListener(runner, site, services)
