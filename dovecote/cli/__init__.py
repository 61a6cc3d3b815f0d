"""The ``dovecote`` command: ``serve`` runs a broker; the other subcommands
are clients of a running broker's HTTP admin API (``--admin URL``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from dovecote.cli import groups, pubsub, queues, records, serve, topics
from dovecote.cli.http import AdminClient, AdminError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dovecote", description="Dovecote message broker")
    parser.add_argument(
        "--admin",
        dest="admin_url",
        default=os.environ.get("DOVECOTE_ADMIN_URL", "http://127.0.0.1:8080"),
        help="admin API of the broker to talk to (env DOVECOTE_ADMIN_URL; default http://127.0.0.1:8080)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(sub)
    topics.add_parser(sub)
    records.add_parsers(sub)
    groups.add_parser(sub)
    queues.add_parsers(sub)
    pubsub.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    if args.command != "serve":
        args.client = AdminClient(args.admin_url)
    try:
        return int(args.func(args) or 0)
    except AdminError as err:
        print(f"dovecote: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
