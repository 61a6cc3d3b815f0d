"""``dovecote queues list|purge``, ``dovecote exchanges list``, ``dovecote bindings list``."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from dovecote.cli.http import quote

console = Console()


def add_parsers(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("queues", help="queues: ready, unacked, consumers, dead-letter depth")
    verbs = q.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list").set_defaults(func=list_queues)
    purge = verbs.add_parser("purge", help="drop every ready message of a queue")
    purge.add_argument("queue")
    purge.set_defaults(func=purge_queue)
    e = sub.add_parser("exchanges", help="exchanges")
    e.add_subparsers(dest="verb", required=True).add_parser("list").set_defaults(
        func=list_exchanges
    )
    b = sub.add_parser("bindings", help="bindings")
    b.add_subparsers(dest="verb", required=True).add_parser("list").set_defaults(func=list_bindings)


def list_queues(args: argparse.Namespace) -> int:
    table = Table(
        "queue",
        "kind",
        "ready",
        "in flight",
        "delayed",
        "consumers",
        "DLQ depth",
        "durable",
        "arguments",
    )
    for q in args.client.get("/v1/queues"):
        # SQS attributes are long; `aws sqs get-queue-attributes` shows them
        arguments = {k: v for k, v in q["arguments"].items() if k != "sqs"}
        table.add_row(
            q["name"],
            q.get("declared_by", "-"),
            f"{q['messages_ready']:,}",
            f"{q['messages_unacked']:,}",
            f"{q.get('messages_delayed', 0):,}",
            str(q["consumers"]),
            "-" if q["dead_letter_depth"] is None else f"{q['dead_letter_depth']:,}",
            "yes" if q["durable"] else "no",
            ", ".join(f"{k}={v}" for k, v in arguments.items()),
        )
    console.print(table)
    return 0


def purge_queue(args: argparse.Namespace) -> int:
    result = args.client.post(f"/v1/queues/{quote(args.queue)}/purge", {})
    console.print(f"purged {result['purged']:,} messages from [bold]{args.queue}[/]")
    return 0


def list_exchanges(args: argparse.Namespace) -> int:
    table = Table("exchange", "type", "durable", "bindings", "arguments")
    for e in args.client.get("/v1/exchanges"):
        table.add_row(
            e["name"] or "(default)",
            e["type"],
            "yes" if e["durable"] else "no",
            str(e["bindings"]),
            ", ".join(f"{k}={v}" for k, v in e["arguments"].items()),
        )
    console.print(table)
    return 0


def list_bindings(args: argparse.Namespace) -> int:
    table = Table("source", "destination", "type", "routing key", "arguments")
    for b in args.client.get("/v1/bindings"):
        table.add_row(
            b["source"],
            b["destination"],
            b["destination_type"],
            b["routing_key"],
            ", ".join(f"{k}={v}" for k, v in b["arguments"].items()),
        )
    console.print(table)
    return 0
