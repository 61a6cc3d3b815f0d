"""``dovecote groups list|describe|reset-offsets|delete``: consumer groups and lag."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from dovecote.cli.http import quote

console = Console()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("groups", help="consumer groups: members, committed offsets, lag")
    verbs = p.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="groups with state, members and total lag").set_defaults(
        func=list_
    )
    d = verbs.add_parser("describe", help="per partition: committed offset, log end, lag, owner")
    d.add_argument("group")
    d.set_defaults(func=describe)
    r = verbs.add_parser(
        "reset-offsets", help="move committed offsets (a dry run unless --execute)"
    )
    r.add_argument("group")
    r.add_argument("--topic", required=True)
    target = r.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true")
    target.add_argument("--to-latest", action="store_true")
    target.add_argument("--to-offset", type=int)
    target.add_argument("--to-timestamp", type=int, metavar="MS")
    target.add_argument("--shift-by", type=int)
    r.add_argument("--partition", type=int, action="append", help="only these partitions")
    r.add_argument("--execute", action="store_true", help="apply (default: show the plan only)")
    r.set_defaults(func=reset)
    rm = verbs.add_parser("delete", help="delete an empty group and its offsets")
    rm.add_argument("group")
    rm.set_defaults(func=delete)


def list_(args: argparse.Namespace) -> int:
    table = Table("group", "state", "protocol", "members", "lag")
    for g in args.client.get("/v1/groups"):
        table.add_row(
            g["group_id"],
            g["state"],
            g["protocol_type"] or "",
            str(g["members"]),
            f"{g['total_lag']:,}",
        )
    console.print(table)
    return 0


def describe(args: argparse.Namespace) -> int:
    g = args.client.get(f"/v1/groups/{quote(args.group)}")
    console.print(
        f"group [bold]{g['group_id']}[/]  state {g['state']}  generation {g['generation']}  "
        f"protocol {g['protocol'] or '-'}  members {len(g['members'])}"
    )
    table = Table("topic", "partition", "committed", "log end", "lag", "owner (client id / host)")
    for r in g["offsets"]:
        owner = r["owner"]
        table.add_row(
            r["topic"],
            str(r["partition"]),
            "-" if r["committed_offset"] is None else str(r["committed_offset"]),
            "-" if r["log_end_offset"] is None else str(r["log_end_offset"]),
            "-" if r["lag"] is None else str(r["lag"]),
            f"{owner['client_id']} / {owner['host']}" if owner else "-",
        )
    console.print(table)
    return 0


def reset(args: argparse.Namespace) -> int:
    if args.to_earliest:
        to, value = "earliest", None
    elif args.to_latest:
        to, value = "latest", None
    elif args.to_offset is not None:
        to, value = "offset", args.to_offset
    elif args.to_timestamp is not None:
        to, value = "timestamp", args.to_timestamp
    else:
        to, value = "shift", args.shift_by
    result = args.client.post(
        f"/v1/groups/{quote(args.group)}/reset-offsets",
        {
            "topic": args.topic,
            "to": to,
            "value": value,
            "partitions": args.partition,
            "dry_run": not args.execute,
        },
    )
    table = Table("topic", "partition", "current", "new")
    for r in result["offsets"]:
        table.add_row(
            r["topic"],
            str(r["partition"]),
            "-" if r["current"] is None else str(r["current"]),
            str(r["new"]),
        )
    console.print(table)
    console.print(
        "applied" if not result["dry_run"] else "dry run: nothing changed (add --execute to apply)"
    )
    return 0


def delete(args: argparse.Namespace) -> int:
    args.client.delete(f"/v1/groups/{quote(args.group)}")
    console.print(f"deleted group [bold]{args.group}[/]")
    return 0
