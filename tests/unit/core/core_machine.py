"""The base of the core's hypothesis state machines: a real BrokerCore on its
own event loop and temporary data directory, driven synchronously by rules."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from hypothesis.stateful import RuleBasedStateMachine

from dovecote.core.broker import BrokerCore
from dovecote.core.clock import Clock
from dovecote.core.config import BrokerConfig

T = TypeVar("T")


class CoreMachine(RuleBasedStateMachine):
    """Starts a core (on ``clock``, the system's if None) before the rules run
    and stops it, and removes its data, after them."""

    def __init__(self, prefix: str, clock: Clock | None = None) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.clock = clock
        self.core = self.start_core()

    def start_core(self) -> BrokerCore:
        """A core on this machine's data directory (again after a restart)."""
        config = BrokerConfig.load(env={}, overrides={"data_dir": self.dir})
        core = BrokerCore(config, clock=self.clock)
        self.run(core.start())
        return core

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a synchronous core call on the loop, as adapters do."""

        async def inside() -> T:
            result = fn(*args, **kwargs)
            await self.after_call()
            return result

        return self.run(inside())

    async def after_call(self) -> None:
        """What a machine lets happen after each call (nothing by default)."""

    def teardown(self) -> None:
        self.run(self.core.stop())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)
