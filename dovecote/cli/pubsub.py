"""``dovecote pubsub list``: Pub/Sub topics, and subscriptions with the figures
Pub/Sub users watch (backlog, oldest unacked age, DLQ depth, push health)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pubsub", help="Pub/Sub topics and subscriptions: backlog, oldest age")
    verbs = p.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="topics and subscriptions").set_defaults(func=list_)


def list_(args: argparse.Namespace) -> int:
    topics = Table("Pub/Sub topic", "log topic", "messages", "subscriptions", "retention")
    for t in args.client.get("/v1/pubsub/topics"):
        retention = t["message_retention_s"]
        topics.add_row(
            t["name"],
            t["log_topic"],
            f"{t['messages']:,}",
            str(len(t["subscriptions"])),
            "-" if retention is None else duration(retention),
        )
    console.print(topics)
    subs = Table(
        "subscription",
        "topic",
        "type",
        "backlog",
        "in flight",
        "oldest unacked",
        "DLQ depth",
        "push endpoint",
        "push health",
    )
    for s in args.client.get("/v1/pubsub/subscriptions"):
        subs.add_row(
            s["name"],
            s["topic"],
            s["type"],
            count(s["backlog"]),
            count(s["messages_in_flight"]),
            "-" if s["oldest_unacked_age_s"] is None else duration(s["oldest_unacked_age_s"]),
            count(s["dead_letter_depth"]),
            s["push_endpoint"] or "-",
            health(s["push_health"]),
        )
    console.print(subs)
    return 0


def count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def duration(seconds: float) -> str:
    """1.5s, 3m20s, 7d: the largest units that matter."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n]
    return "".join(shown[:2])


def health(report: dict[str, Any] | None) -> str:
    if not report:
        return "-"
    state = "ok" if report.get("healthy") else "failing"
    extra = ", ".join(f"{k}={v}" for k, v in report.items() if k != "healthy")
    return f"{state} ({extra})" if extra else state
