"""``dovecote topics create|list|describe|alter|delete``."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from dovecote.cli.http import quote

console = Console()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("topics", help="create, list, describe, alter and delete topics")
    verbs = p.add_subparsers(dest="verb", required=True)
    c = verbs.add_parser("create", help="create a topic")
    c.add_argument("name")
    c.add_argument("--partitions", "-p", type=int)
    c.add_argument("--config", "-c", action="append", default=[], metavar="KEY=VALUE")
    c.set_defaults(func=create)
    ls = verbs.add_parser("list", help="list topics")
    ls.add_argument("--internal", action="store_true", help="include internal topics")
    ls.set_defaults(func=list_)
    d = verbs.add_parser("describe", help="partitions, offsets and configs of a topic")
    d.add_argument("name")
    d.set_defaults(func=describe)
    a = verbs.add_parser("alter", help="change configs or add partitions")
    a.add_argument("name")
    a.add_argument("--config", "-c", action="append", default=[], metavar="KEY=VALUE")
    a.add_argument("--delete-config", action="append", default=[], metavar="KEY")
    a.add_argument("--partitions", "-p", type=int, help="raise the partition count to this")
    a.set_defaults(func=alter)
    rm = verbs.add_parser("delete", help="delete a topic and its data")
    rm.add_argument("name")
    rm.set_defaults(func=delete)


def _configs(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"dovecote: --config wants KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def create(args: argparse.Namespace) -> int:
    body = {"name": args.name, "partitions": args.partitions, "configs": _configs(args.config)}
    topic = args.client.post("/v1/topics", body)
    console.print(f"created topic [bold]{topic['name']}[/] with {topic['partitions']} partitions")
    return 0


def list_(args: argparse.Namespace) -> int:
    topics = args.client.get("/v1/topics", internal="true" if args.internal else None)
    table = Table("topic", "partitions", "messages", "bytes")
    for t in topics:
        table.add_row(t["name"], str(t["partitions"]), f"{t['messages']:,}", f"{t['bytes']:,}")
    console.print(table)
    sns = args.client.get("/v1/sns/topics")
    if sns:
        console.print(sns_table(sns))
    return 0


def sns_table(topics: list[dict]) -> Table:
    """SNS topics, one row per subscription (a topic without any has one row)."""
    table = Table("SNS topic", "subscription", "endpoint", "raw", "filter", "ready", "in flight")
    for t in topics:
        name = t["name"] + (" (FIFO)" if t["fifo"] else "")
        if not t["subscriptions"]:
            table.add_row(name, "-", "-", "-", "-", "-", "-")
        for s in t["subscriptions"]:
            table.add_row(
                name,
                s["protocol"]
                if s["arn"] != "PendingConfirmation"
                else f"{s['protocol']} (pending)",
                s["endpoint"],
                "yes" if s["raw"] else "no",
                s["filter_policy"] or "-",
                "-" if s["messages_ready"] is None else f"{s['messages_ready']:,}",
                "-" if s["messages_unacked"] is None else f"{s['messages_unacked']:,}",
            )
            name = ""
    return table


def describe(args: argparse.Namespace) -> int:
    topic = args.client.get(f"/v1/topics/{quote(args.name)}")
    console.print(f"[bold]{topic['name']}[/]  id {topic['id']}  partitions {topic['partitions']}")
    table = Table("partition", "log start", "high watermark", "segments", "bytes")
    for p in topic["partition_details"]:
        table.add_row(
            str(p["partition"]),
            str(p["log_start_offset"]),
            str(p["high_watermark"]),
            str(p["segments"]),
            f"{p['bytes']:,}",
        )
    console.print(table)
    configs = Table("config", "value", "source")
    for c in topic["configs"]:
        configs.add_row(c["name"], c["value"], c["source"])
    console.print(configs)
    return 0


def alter(args: argparse.Namespace) -> int:
    if args.partitions is not None:
        args.client.post(f"/v1/topics/{quote(args.name)}/partitions", {"count": args.partitions})
    if args.config or args.delete_config:
        args.client.patch(
            f"/v1/topics/{quote(args.name)}/configs",
            {"set": _configs(args.config), "delete": args.delete_config},
        )
    console.print(f"altered topic [bold]{args.name}[/]")
    return 0


def delete(args: argparse.Namespace) -> int:
    args.client.delete(f"/v1/topics/{quote(args.name)}")
    console.print(f"deleted topic [bold]{args.name}[/]")
    return 0
