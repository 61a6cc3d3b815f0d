"""``dovecote serve``: run a broker until SIGINT/SIGTERM, then flush and exit 0."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import signal
import sys
from pathlib import Path

from dovecote.core.config import FLUSH_POLICIES
from dovecote.core.errors import InvalidConfig
from dovecote.malloc_tuning import reuse_large_blocks
from dovecote.settings import LISTENERS, ServerConfig

log = logging.getLogger("dovecote")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the broker",
        description="Run the broker. Each setting can also come from DOVECOTE_<NAME> "
        "(e.g. DOVECOTE_KAFKA=127.0.0.1:19092) or a TOML file (--config).",
    )
    p.add_argument("--data-dir", type=Path, help="where logs and metadata live (default ./data)")
    p.add_argument("--config", type=Path, help="TOML settings file")
    for name, port in LISTENERS.items():
        p.add_argument(
            f"--{name}",
            metavar="HOST:PORT|off",
            help=f"{name} listener (default 127.0.0.1:{port}; env DOVECOTE_{name.upper()})",
        )
    p.add_argument(
        "--flush",
        choices=FLUSH_POLICIES,
        help="default flush policy: ack = fsync before acknowledging (default), "
        "interval = every flush.ms, never = leave it to the OS",
    )
    p.add_argument("--advertised-host", help="host name Kafka clients are told to connect to")
    p.add_argument(
        "--ready-file", type=Path, help="write the bound addresses here as JSON once serving"
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    listeners = {n: getattr(args, n) for n in LISTENERS if getattr(args, n) is not None}
    if listeners:
        overrides["listeners"] = listeners
    if args.flush:
        overrides["flush"] = args.flush
    if args.advertised_host:
        overrides["advertised_host"] = args.advertised_host
    try:
        config = ServerConfig.load(file=args.config, overrides=overrides)
    except (InvalidConfig, OSError) as err:
        print(f"dovecote: {err}", file=sys.stderr)
        return 2
    _install_event_loop()
    return asyncio.run(_serve(config, args.ready_file))


async def _serve(config: ServerConfig, ready_file: Path | None) -> int:
    from dovecote.server import Broker

    broker = Broker(config=config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, broker.request_stop)
    log.info(
        "data directory %s, flush policy %s",
        config.data_dir.resolve(),
        config.topic_default("flush.policy"),
    )
    try:
        await broker.start()
    except (RuntimeError, OSError) as err:
        log.error("cannot start: %s", err)
        return 1
    # What start-up made (protocol models, the catalog, indexes) lives as long
    # as the process: keep it out of every later full collection, which
    # otherwise walks it again and again (tens of ms per pause).
    gc.collect()
    gc.freeze()
    reuse_large_blocks()
    if ready_file is not None:
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(json.dumps(broker.addresses()))
        tmp.replace(ready_file)
    log.info("ready")
    await broker.wait_stopped()
    log.info("stopping")
    await broker.stop()
    log.info("stopped cleanly")
    return 0


def _install_event_loop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
