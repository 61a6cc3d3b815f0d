"""A broker on its own event loop in a background thread, for synchronous tests."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from dovecote.settings import LISTENERS


class BrokerThread:
    """Start with :meth:`start` (or use as a context manager); every listener
    binds a free loopback port unless told otherwise."""

    def __init__(self, data_dir: str | Path | None = None, **overrides: Any) -> None:
        self._tmp = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="dovecote-")
            data_dir = self._tmp.name
        self.data_dir = Path(data_dir)
        for name in LISTENERS:
            overrides.setdefault(name, "127.0.0.1:0")
        self.overrides = overrides
        self.loop: asyncio.AbstractEventLoop | None = None
        self.broker = None
        self._thread: threading.Thread | None = None

    def start(self) -> BrokerThread:
        from dovecote.server import Broker

        started: Future[None] = Future()
        self.loop = asyncio.new_event_loop()

        def run() -> None:
            assert self.loop is not None
            asyncio.set_event_loop(self.loop)
            try:
                self.broker = Broker(self.data_dir, **self.overrides)
                self.loop.run_until_complete(self.broker.start())
            except BaseException as err:
                started.set_exception(err)
                return
            started.set_result(None)
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="dovecote-broker", daemon=True)
        self._thread.start()
        started.result(timeout=60)
        return self

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the broker's loop (e.g. ``broker.core.create_topic(...)``)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is None or self._thread is None:
            return
        if self.broker is not None:
            asyncio.run_coroutine_threadsafe(self.broker.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        self.loop = None
        self._thread = None

    def restart(self) -> None:
        """Stop cleanly and start again on the same data (ports may change)."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def kafka_bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.kafka_bootstrap

    @property
    def amqp_url(self) -> str:
        assert self.broker is not None
        return self.broker.amqp_url

    @property
    def aws_endpoint(self) -> str:
        """``http://host:port`` of the SQS/SNS listener, for ``endpoint_url=``."""
        assert self.broker is not None
        return self.broker.aws_endpoint

    @property
    def pubsub_host(self) -> str:
        """``host:port`` of the Pub/Sub listener, for ``PUBSUB_EMULATOR_HOST``."""
        assert self.broker is not None
        return self.broker.pubsub_host

    def addresses(self) -> dict[str, str]:
        assert self.broker is not None
        return self.broker.addresses()

    def __enter__(self) -> BrokerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
