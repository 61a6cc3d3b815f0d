"""``dovecote produce TOPIC`` (lines from stdin) and ``dovecote consume TOPIC``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import datetime

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from dovecote.cli.http import AdminError, quote

err_console = Console(stderr=True)
BATCH = 500


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("produce", help="produce lines from stdin as records")
    p.add_argument("topic")
    p.add_argument("--key-separator", help="split each line into key and value at the first SEP")
    p.add_argument("--partition", type=int, help="all records to this partition (default: by key)")
    p.add_argument("--header", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.set_defaults(func=produce)

    c = sub.add_parser("consume", help="print records of a topic")
    c.add_argument("topic")
    where = c.add_mutually_exclusive_group()
    where.add_argument("--from-beginning", action="store_true", help="start at the earliest offset")
    where.add_argument(
        "--offset", type=int, help="start at this offset (of --partition, or every partition)"
    )
    where.add_argument(
        "--timestamp", help="start at the first record at or after this time (ms or ISO 8601)"
    )
    c.add_argument("--partition", type=int, help="only this partition")
    c.add_argument(
        "--group",
        help="consume as a member of this consumer group: share its partitions with the"
        " group's other members, start at its committed offsets, commit as records are printed",
    )
    c.add_argument("--follow", "-f", action="store_true", help="keep waiting for new records")
    c.add_argument("--max-messages", type=int, help="stop after this many records")
    c.add_argument("--print-key", action="store_true")
    c.add_argument("--print-offset", action="store_true", help="prefix partition and offset")
    c.add_argument("--print-headers", action="store_true")
    c.add_argument("--key-separator", default="\t")
    c.set_defaults(func=consume)


def _headers(pairs: list[str]) -> list[list[str]]:
    out = []
    for pair in pairs:
        key, _, value = pair.partition("=")
        out.append([key, value])
    return out


def produce(args: argparse.Namespace) -> int:
    path = f"/v1/topics/{quote(args.topic)}/records"
    headers = _headers(args.header)
    sent = 0
    batch: list[dict] = []
    show = not args.quiet and not sys.stdin.isatty()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not show,
    ) as progress:
        task = progress.add_task("producing", total=None)

        def flush() -> None:
            nonlocal sent
            if batch:
                args.client.post(path, {"records": batch})
                sent += len(batch)
                batch.clear()
                progress.update(task, description=f"produced {sent:,} records to {args.topic}")

        for line in sys.stdin:
            line = line.rstrip("\n")
            key = None
            if args.key_separator and args.key_separator in line:
                key, line = line.split(args.key_separator, 1)
            record = {"key": key, "value": line, "headers": headers}
            if args.partition is not None:
                record["partition"] = args.partition
            batch.append(record)
            if len(batch) >= BATCH:
                flush()
        flush()
    err_console.print(f"produced {sent:,} records to {args.topic}")
    return 0


def _parse_time(value: str) -> int:
    if value.isdigit():
        return int(value)
    return int(datetime.fromisoformat(value).timestamp() * 1000)


def _start_offsets(args: argparse.Namespace, partitions: list[int]) -> dict[int, int]:
    client = args.client
    query = {"timestamp": _parse_time(args.timestamp)} if args.timestamp else {}
    table = {
        row["partition"]: row
        for row in client.get(f"/v1/topics/{quote(args.topic)}/offsets", **query)
    }
    committed: dict[int, int] = {}
    if args.group:
        try:
            group = client.get(f"/v1/groups/{quote(args.group)}")
            committed = {
                r["partition"]: r["committed_offset"]
                for r in group["offsets"]
                if r["topic"] == args.topic and r["committed_offset"] is not None
            }
        except AdminError:
            committed = {}
    start = {}
    for p in partitions:
        row = table[p]
        if args.offset is not None:
            start[p] = args.offset
        elif args.timestamp:
            start[p] = row["offset_for_timestamp"]
        elif p in committed:
            start[p] = committed[p]
        elif args.from_beginning:
            start[p] = row["earliest"]
        else:
            start[p] = row["latest"]
    return start


def _print_records(args: argparse.Namespace, records: list[dict]) -> None:
    out = sys.stdout
    for r in records:
        parts = []
        if args.print_offset:
            parts.append(f"{r['partition']}:{r['offset']}")
        if args.print_key:
            parts.append(r["key"] if r["key"] is not None else "null")
        if args.print_headers:
            parts.append(",".join(f"{k}={v}" for k, v in r["headers"]) or "-")
        parts.append(r["value"] if r["value"] is not None else "null")
        out.write(args.key_separator.join(parts) + "\n")
    out.flush()


def consume(args: argparse.Namespace) -> int:
    if args.group:
        if args.partition is not None or args.offset is not None or args.timestamp:
            err_console.print(
                "--group consumes the partitions the group assigns from its committed offsets;"
                " --partition, --offset and --timestamp do not go with it"
            )
            return 2
        return _consume_in_group(args)
    client = args.client
    topic = client.get(f"/v1/topics/{quote(args.topic)}")
    partitions = (
        [args.partition] if args.partition is not None else list(range(topic["partitions"]))
    )
    position = _start_offsets(args, partitions)
    ends = {p["partition"]: p["high_watermark"] for p in topic["partition_details"]}
    printed = 0
    while True:
        got_any = False
        for p in partitions:
            if not args.follow and position[p] >= ends[p]:
                continue
            records, position[p] = _page(args, p, position[p], printed)
            _print_records(args, records)
            printed += len(records)
            got_any = got_any or bool(records)
            if args.max_messages is not None and printed >= args.max_messages:
                return 0
        if not got_any:
            if not args.follow and all(position[p] >= ends[p] for p in partitions):
                return 0
            _wait(args, partitions, position)


def _page(args: argparse.Namespace, partition: int, offset: int, printed: int) -> tuple[list, int]:
    """The next records of a partition (at most what --max-messages leaves) and the
    offset after them."""
    page = args.client.get(
        f"/v1/topics/{quote(args.topic)}/partitions/{partition}/records",
        offset=offset,
        max_records=BATCH,
        timeout_ms=0,
    )
    records = page["records"]
    if args.max_messages is not None:
        records = records[: args.max_messages - printed]
    return records, (records[-1]["offset"] + 1 if records else page["next_offset"])


def _wait(args: argparse.Namespace, partitions: list[int], position: dict[int, int]) -> None:
    """Nothing new: long-poll one partition (or nap) instead of spinning."""
    if args.follow and partitions:
        args.client.get(
            f"/v1/topics/{quote(args.topic)}/partitions/{partitions[0]}/records",
            offset=position[partitions[0]],
            max_records=1,
            timeout_ms=1000 if len(partitions) == 1 else 200,
        )
    else:
        time.sleep(0.05 if partitions else 0.2)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _consume_in_group(args: argparse.Namespace) -> int:
    """Consume as a broker-side member of the group: the partitions the
    group's assignor gives this member, re-read at every poll (a rebalance
    takes some away or brings new ones), offsets committed with the member's
    generation so a stale member cannot move them."""
    client = args.client
    group = quote(args.group)
    # SIGTERM (and SIGINT, which a background job may have ignored) leave the
    # group on the way out, as a Kafka consumer's shutdown does.
    signal.signal(signal.SIGTERM, _interrupt)
    joined = client.post(f"/v1/groups/{group}/members", {"topics": [args.topic]})
    session = joined["session_id"]
    try:
        generation: int | None = None
        partitions: list[int] = []
        position: dict[int, int] = {}
        ends: dict[int, int] = {}
        printed = 0
        while True:
            state = client.get(f"/v1/groups/{group}/members/{session}")
            if state["error"]:
                err_console.print(f"group {args.group}: {state['error']}")
                return 1
            if state["generation"] != generation or not state["stable"]:
                generation = state["generation"] if state["stable"] else None
                partitions = sorted(
                    a["partition"] for a in state["assignment"] if a["topic"] == args.topic
                )
                position = _start_offsets(args, partitions)
                topic = client.get(f"/v1/topics/{quote(args.topic)}")
                ends = {p["partition"]: p["high_watermark"] for p in topic["partition_details"]}
            got_any = False
            for p in partitions:
                if not args.follow and position[p] >= ends[p]:
                    continue
                records, position[p] = _page(args, p, position[p], printed)
                if not records:
                    continue
                _print_records(args, records)
                printed += len(records)
                got_any = True
                try:
                    client.post(
                        f"/v1/groups/{group}/offsets",
                        {
                            "session": session,
                            "offsets": [
                                {"topic": args.topic, "partition": p, "offset": position[p]}
                            ],
                        },
                    )
                except AdminError:
                    break  # a rebalance began: the next poll has the new assignment
                if args.max_messages is not None and printed >= args.max_messages:
                    return 0
            if not got_any:
                done = generation is not None and all(position[p] >= ends[p] for p in partitions)
                if not args.follow and done:
                    return 0
                _wait(args, partitions, position)
    finally:
        # Leave at once so the others get the partitions now; if that fails,
        # the broker drops the member after its session timeout anyway.
        try:
            client.delete(f"/v1/groups/{group}/members/{session}", timeout=5)
        except (AdminError, OSError):
            pass
