"""A running broker: the core plus whichever protocol listeners are built.

``async with Broker(data_dir=...) as broker:`` runs one inside any asyncio
program (tests included); ``dovecote serve`` runs one as a process.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dovecote.core.broker import BrokerCore
from dovecote.settings import LISTENERS, ServerConfig, split_address

log = logging.getLogger("dovecote")

# Where each protocol's listener lives; a module that does not exist yet is a
# listener not yet built, and is simply not started.
LISTENER_MODULES = {
    "kafka": "dovecote.kafka.server",
    "amqp": "dovecote.amqp.server",
    "http": "dovecote.admin.server",
    "aws": "dovecote.aws.server",
    "pubsub": "dovecote.pubsub.server",
    "registry": "dovecote.registry.server",
}


class Listener(Protocol):
    """What a protocol module's ``async def start_listener(broker, host, port)`` returns."""

    @property
    def address(self) -> tuple[str, int]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def built_listeners() -> dict[str, Any]:
    """Protocol name -> listener module, for the listeners that exist."""
    found = {}
    for name, module_name in LISTENER_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        found[name] = module
    return found


class Broker:
    """Dovecote in-process. Keyword overrides match :class:`ServerConfig`
    fields, plus one per listener (``kafka="127.0.0.1:0"``, ``amqp="off"``)."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        config: ServerConfig | None = None,
        **overrides: Any,
    ) -> None:
        if config is None:
            listener_overrides = {k: overrides.pop(k) for k in list(overrides) if k in LISTENERS}
            values: dict[str, Any] = dict(overrides)
            if listener_overrides:
                values["listeners"] = listener_overrides
            config = ServerConfig.load(env={}, overrides=values)
        elif overrides:
            raise TypeError("pass either config= or keyword overrides, not both")
        if data_dir is not None:
            config.data_dir = Path(data_dir)
        self.config = config
        self.core = BrokerCore(config)
        self.listeners: dict[str, Listener] = {}
        self._stopped = asyncio.Event()

    # --- addresses ----------------------------------------------------------

    def endpoint(self, name: str) -> Endpoint:
        host, port = self.listeners[name].address
        return Endpoint(host, port)

    @property
    def kafka_bootstrap(self) -> str:
        return str(self.endpoint("kafka"))

    @property
    def amqp_url(self) -> str:
        e = self.endpoint("amqp")
        return f"amqp://guest:guest@{e.host}:{e.port}/"

    @property
    def aws_endpoint(self) -> str:
        """The SQS/SNS endpoint URL (boto3's ``endpoint_url``)."""
        e = self.endpoint("aws")
        return f"http://{e.host}:{e.port}"

    @property
    def pubsub_host(self) -> str:
        """``host:port`` of the Pub/Sub listener (what ``PUBSUB_EMULATOR_HOST`` takes)."""
        return str(self.endpoint("pubsub"))

    def addresses(self) -> dict[str, str]:
        return {name: str(self.endpoint(name)) for name in self.listeners}

    # --- lifecycle ----------------------------------------------------------

    async def start(self) -> Broker:
        await self.core.start()
        try:
            modules = built_listeners()
            for name, address in self.config.listeners.items():
                if address is None:
                    continue
                module = modules.get(name)
                if module is None:
                    log.debug("%s listener is not built yet; not started", name)
                    continue
                host, port = split_address(address)
                listener = await module.start_listener(self, host, port)
                self.listeners[name] = listener
                log.info("%s listening on %s", name, self.endpoint(name))
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        for name, listener in list(self.listeners.items()):
            try:
                await listener.close()
            except Exception:
                log.exception("closing the %s listener failed", name)
        self.listeners.clear()
        if not self.core.loading:
            await self.core.stop()
        self._stopped.set()

    def request_stop(self) -> None:
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def __aenter__(self) -> Broker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
