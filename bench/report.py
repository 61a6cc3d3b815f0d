"""docs/benchmarks.md and its charts, generated from one run's result records.

    python -m bench --report-only [--run-id ID]

The whole file is written from scratch each time from bench/results/*.json
(only records of the chosen run), with the hand-written introduction in
bench/report_intro.md at the top; edit that file or this generator, never
docs/benchmarks.md itself. A workload's section appears once its records
exist (AMQP's once bench/amqp.py has run), and a step that was skipped or
failed is listed as such rather than silently missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, Result
from bench.targets import DOVECOTE, TARGETS

INTRO = Path(__file__).resolve().parent / "report_intro.md"
# What a change set out to prove, checked against the previous published run (hand-written).
CHANGES = Path(__file__).resolve().parent / "report_changes.md"
MODES = ("durable", "fire-and-forget")
WORKLOADS = ("produce", "consume", "end-to-end")


# --- loading -------------------------------------------------------------------------


def load_run(run_id: str | None = None) -> tuple[str, dict[str, Any], list[Result]]:
    """(run id, run record from runs.json or {}, that run's results)."""
    runs_file = RESULTS_DIR / "runs.json"
    runs = json.loads(runs_file.read_text()) if runs_file.exists() else []
    rows: list[dict[str, Any]] = []
    for path in sorted(RESULTS_DIR.glob("*.json")):
        if path.name == "runs.json":
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, list):
            rows += [r for r in data if isinstance(r, dict) and {"name", "run_id"} <= r.keys()]
    if run_id is None:
        if runs:
            run_id = runs[-1]["run_id"]
        elif rows:
            run_id = max(rows, key=lambda r: r.get("timestamp", ""))["run_id"]
        else:
            raise FileNotFoundError(f"no results in {RESULTS_DIR}: run python -m bench first")
    run = next((r for r in runs if r.get("run_id") == run_id), {})
    fields = Result.__dataclass_fields__
    results = [
        Result(**{k: v for k, v in r.items() if k in fields}) for r in rows if r["run_id"] == run_id
    ]
    return run_id, run, results


# --- formatting ----------------------------------------------------------------------


def num(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    if digits == 0 and abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{max(digits, 2)}f}"


def spread(r: Result) -> str:
    if not r.spread or r.repeats < 2:
        return ""
    return f" [{num(r.spread['min'])}..{num(r.spread['max'])}]"


def ratio(mine: Result | None, theirs: Result | None) -> str:
    if mine is None or theirs is None or not theirs.figure:
        return "-"
    if theirs.params.get("short_runs") or mine.params.get("short_runs"):
        return "n/a (incomplete runs)"
    return f"{mine.figure / theirs.figure:.2f}"


def table(header: list[str], rows: Iterable[list[str]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def size_text(size: int) -> str:
    return "1 KiB" if size == 1024 else f"{size} B"


# --- sections --------------------------------------------------------------------------


class Report:
    def __init__(self, run_id: str, run: dict[str, Any], results: list[Result], docs: Path):
        self.run_id, self.run, self.results, self.docs = run_id, run, results, docs
        self.charts_dir = docs / "benchmarks"
        self.charts: list[Path] = []

    def find(self, name: str, system: str | None = None, **params: Any) -> list[Result]:
        return [
            r
            for r in self.results
            if r.name == name
            and (system is None or r.system == system)
            and all(r.params.get(k) == v for k, v in params.items())
        ]

    def one(self, name: str, system: str | None = None, **params: Any) -> Result | None:
        found = self.find(name, system, **params)
        return found[-1] if found else None

    def chart(self, name: str) -> Path | None:
        """Path for a chart, or None when matplotlib is not installed."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return None
        self.charts_dir.mkdir(parents=True, exist_ok=True)
        path = self.charts_dir / name
        self.charts.append(path)
        return path

    def image(self, path: Path | None, alt: str) -> list[str]:
        if path is None:
            return []
        return [f"![{alt}]({path.relative_to(self.docs).as_posix()})", ""]

    # -- the run ------------------------------------------------------------------------

    def header(self) -> list[str]:
        intro = INTRO.read_text().strip() if INTRO.exists() else ""
        quick = self.run.get("quick")
        lines = [
            "<!-- Generated by `make bench` (python -m bench, bench/report.py) from "
            f"bench/results/*.json, run {self.run_id}. Do not edit by hand: edit "
            "bench/report_intro.md, bench/report_changes.md or bench/report.py and run `python -m bench --report-only`. -->",
            "",
            "# Benchmarks",
            "",
        ]
        if quick:
            lines += [
                "> **Smoke run (`--quick`)**: small sizes and one repeat. These figures "
                "only show that the suite works; do not quote them.",
                "",
            ]
        return [*lines, intro, ""]

    def changes_section(self) -> list[str]:
        """bench/report_changes.md as written: what the latest change set out
        to prove (e.g. no regression), against the previous published run."""
        if not CHANGES.exists():
            return []
        return [CHANGES.read_text().strip(), ""]

    def glance_section(self) -> list[str]:
        """The headline figures: Dovecote's and its ratio to each peer, per mode."""
        lines: list[str] = []
        picks = [
            ("produce", "produce 1 KiB, 1 partition", 1024, 1),
            ("produce", "produce 100 B, 8 partitions", 100, 8),
            ("consume", "consume 1 KiB, 1 partition", 1024, 1),
            ("end-to-end", "end-to-end 1 KiB, 1 partition", 1024, 1),
            ("latency p99", "latency p99 (ms, lower is better)", 1024, 1),
        ]
        for mode in MODES:
            rows = []
            peers = [t.system for t in TARGETS if t.mode == mode and t.system != DOVECOTE]
            for name, label, size, partitions in picks:
                key = {"mode": mode, "size": size, "partitions": partitions}
                mine = self.one(name, DOVECOTE, **key)
                if mine is None:
                    continue
                unit = "ms" if mine.unit == "ms" else "rec/s"
                cells = [label, f"{num(mine.figure)} {unit}"]
                cells += [ratio(mine, self.one(name, p, **key)) for p in peers]
                rows.append(cells)
            if rows:
                lines += [f"**{mode.capitalize()}** (Dovecote ÷ peer):", ""]
                lines += table(["figure", "Dovecote", *[f"÷ {p}" for p in peers]], rows)
                lines.append("")
        return ["## At a glance", "", *lines] if lines else []

    def run_section(self) -> list[str]:
        m = self.run.get("machine", {})
        lines = ["## The run", ""]
        if m:
            clients = ", ".join(f"{k} {v}" for k, v in m.get("clients", {}).items())
            lines += [
                f"- run `{self.run_id}`, started {self.run.get('started', '?')}, "
                f"took {self.run.get('seconds', 0) / 60:.1f} min: `{self.run.get('command', '')}`"
                f" (Dovecote commit {m.get('commit') or '?'})",
                f"- machine: {m.get('cpus')} CPUs ({m.get('cpu_model')}), "
                f"{m.get('memory_gib')} GiB memory, {m.get('kernel')}, load at start "
                f"{m.get('load_at_start')}",
                f"- disk under the brokers' data ({m.get('data_dir')}): {m.get('disk')}",
                f"- {m.get('python')}; clients: {clients}",
            ]
        versions = {}
        for r in self.results:
            if "version" in r.params and r.system != "machine":
                versions.setdefault(r.system.split()[0], r.params["version"])
        if versions:
            lines.append(
                "- servers: " + "; ".join(f"{k}: {v}" for k, v in sorted(versions.items()))
            )
        steps = self.run.get("steps", [])
        if steps:
            lines += ["", "Steps, each its own process:", ""]
            lines += table(
                ["step", "command", "status", "seconds"],
                (
                    [s["name"], f"`{s['command']}`", s["status"], f"{s['seconds']:.0f}"]
                    for s in steps
                ),
                "lllr",
            )
        return [*lines, ""]

    # -- what is compared ---------------------------------------------------------------

    def targets_section(self) -> list[str]:
        lines = [
            "## What is compared with what",
            "",
            "Dovecote is measured through its Kafka listener with confluent-kafka "
            "(librdkafka) everywhere. Tansu speaks Kafka too and gets the very same "
            "client code; NATS JetStream and Redis Streams are compared through their own "
            "usual clients (nats-py, redis-py with hiredis) on the same log semantics: "
            "append to a stream, read it back from the start, no per-record "
            "acknowledgement by readers. One partition of a Kafka topic corresponds to one "
            "JetStream stream or one Redis stream key (8 partitions = 8 streams / keys). "
            "The Python clients differ in their own per-record cost (nats-py and redis-py "
            "do more work in Python than librdkafka), so read the broker CPU figures too. "
            "Kafka readers assign() their partitions at offset 0 (no group) with "
            "fetch.wait.max.ms 100: a broker that answers a fetch when that wait expires "
            "rather than when records arrive shows it in its latency. Producers keep each "
            "client's default batching (librdkafka linger 5 ms; nats-py up to 4000 "
            "unacknowledged publishes; one redis-py pipeline of 1000 XADDs in flight per "
            "connection).",
            "",
        ]
        lines += table(
            ["system", "mode", "configured as", "an acknowledgement means"],
            ([t.system, t.mode, t.setting, t.promise] for t in TARGETS),
            "llll",
        )
        return [*lines, ""]

    # -- machine limits -------------------------------------------------------------------

    def limit(self, name: str) -> Result | None:
        return self.one(name, "machine")

    def limits_section(self) -> list[str]:
        rows = [r for r in self.results if r.system == "machine" and "/" in r.name]
        if not rows:
            return []
        lines = [
            "## What the machine allows",
            "",
            "Plain Python, no broker: sequential writes to a new file on the brokers' "
            "disk (no fsync, or fdatasync after every chunk) and one TCP stream over "
            "loopback. The broker figures below are also given as a share of these.",
            "",
        ]
        body = []
        for r in rows:
            syncs = r.params.get("writes_per_s")
            extra = f"{syncs:,.0f} syncs/s" if syncs and "each" in r.name else ""
            body.append([r.name, f"{num(r.figure)}{spread(r)}", r.unit, extra])
        lines += table(["figure", "median [min..max]", "unit", ""], body, "lrll")
        return [*lines, ""]

    def share_of_limits(self, mb_s: float, mode: str) -> str:
        """``mb_s`` as a percentage of the loopback and disk limits that bound it."""
        parts = []
        tcp = self.limit("tcp-loopback/1MiB")
        if tcp:
            parts.append(f"{100 * mb_s / (tcp.figure * 1.048576):.0f}% of loopback TCP")
        disk = self.limit(
            "disk-write/1MiB/each-fdatasync" if mode == "durable" else "disk-write/1MiB/none"
        )
        if disk:
            what = "disk with fdatasync per MiB" if mode == "durable" else "disk (page cache)"
            parts.append(f"{100 * mb_s / (disk.figure * 1.048576):.0f}% of {what}")
        return ", ".join(parts)

    # -- throughput ------------------------------------------------------------------------

    def throughput_section(self) -> list[str]:
        if not any(r.name in WORKLOADS for r in self.results):
            return []
        lines = [
            "## Throughput",
            "",
            "Records per second as the client saw them, median of the repeats "
            "[min..max]; MB/s in the second column of each system. Produce runs stop "
            "after a record count or a time cap; consume runs read back what the "
            "produce run stored; end-to-end runs produce and read (in a separate "
            "process) at once, timed to the last record read. Ratio = Dovecote ÷ peer.",
            "",
        ]
        for mode in MODES:
            rows = [r for r in self.results if r.name in WORKLOADS and r.params.get("mode") == mode]
            if not rows:
                continue
            systems = list(dict.fromkeys(r.system for r in rows))
            peers = [s for s in systems if s != DOVECOTE]
            configs = list(
                dict.fromkeys(
                    (r.name, r.params["size"], r.params["partitions"])
                    for r in sorted(rows, key=lambda r: WORKLOADS.index(r.name))
                )
            )
            lines += [f"### {mode.capitalize()}", ""]
            header = ["workload", "records", "partitions"]
            header += [f"{s} rec/s" for s in systems]
            header += [f"÷ {p}" for p in peers]
            body = []
            notes: list[str] = []
            for name, size, partitions in configs:
                key = {"mode": mode, "size": size, "partitions": partitions}
                found = {s: self.one(name, s, **key) for s in systems}
                row = [name, size_text(size), str(partitions)]
                for s in systems:
                    r = found[s]
                    if r is None:
                        row.append("-")
                        continue
                    cell = f"{num(r.figure)}{spread(r)}<br>{num(r.params.get('mb_s'))} MB/s"
                    if r.params.get("short_runs"):
                        kept = r.params.get("kept")
                        mark = f"{len(notes) + 1}"
                        detail = (
                            f"kept only {100 * kept:.1f}% of the records sent"
                            if kept is not None and kept < 1
                            else "did not finish every run"
                        )
                        notes.append(
                            f"{mark}. {s}, {name} {size_text(size)} x{partitions}: "
                            f"{detail} in {r.params['short_runs']} of {r.repeats} runs; "
                            "its figure is not comparable."
                        )
                        cell += f" ({mark})"
                    row.append(cell)
                row += [ratio(found.get(DOVECOTE), found[p]) for p in peers]
                body.append(row)
            lines += table(header, body)
            lines.append("")
            if notes:
                lines += [*notes, ""]
            cpu_body = []
            for name, size, partitions in configs:
                key = {"mode": mode, "size": size, "partitions": partitions}
                cells = []
                for s in systems:
                    r = self.one(name, s, **key)
                    cells.append(num(r.params.get("cpu_us_per_record"), 1) if r else "-")
                cpu_body.append([name, size_text(size), str(partitions), *cells])
            lines += [
                f"Broker CPU time per record ({mode}), µs (user + system, all threads):",
                "",
            ]
            lines += table(["workload", "records", "partitions", *systems], cpu_body)
            lines.append("")
            best = self.one("produce", DOVECOTE, mode=mode, size=1024, partitions=1)
            if best and best.params.get("mb_s"):
                share = self.share_of_limits(best.params["mb_s"], mode)
                if share:
                    lines += [
                        f"Dovecote's 1 KiB produce ({num(best.params['mb_s'])} MB/s) is {share}.",
                        "",
                    ]
            chart = self.chart(f"throughput-{mode}.png")
            if chart is not None:
                from bench.charts import grouped_bars

                groups = [f"{n}\n{size_text(s)} x{p}" for n, s, p in configs]
                values = {}
                for (n, s, p), g in zip(configs, groups, strict=True):
                    for system in systems:
                        r = self.one(n, system, mode=mode, size=s, partitions=p)
                        if r is not None:
                            values[(g, system)] = r
                grouped_bars(
                    chart,
                    f"Throughput, {mode} (median, min..max)",
                    groups,
                    systems,
                    values,
                    "records/s",
                )
                lines += self.image(chart, f"throughput, {mode}")
        return lines

    # -- latency ------------------------------------------------------------------------------

    def latency_section(self) -> list[str]:
        rows = [r for r in self.results if r.name.startswith("latency ")]
        if not rows:
            return []
        lines = [
            "## End-to-end latency at a fixed rate",
            "",
            "From the scheduled send time to the moment the reader process got the "
            "record, 1 KiB records, one partition; each run's first half second is left "
            "out. Every system of a group runs at the same rate: half of the lowest "
            "end-to-end maximum measured above for that group, so none runs above half "
            "its capacity. Median of the runs' percentiles [min..max], ms. Ratio = "
            "Dovecote ÷ peer (below 1: Dovecote quicker).",
            "",
        ]
        groups, values = [], {}
        for mode in MODES:
            found = [r for r in rows if r.params.get("mode") == mode]
            if not found:
                continue
            systems = list(dict.fromkeys(r.system for r in found))
            any_r = found[0]
            lines += [
                f"### {mode.capitalize()}: {num(any_r.params['rate'])} records/s "
                f"({any_r.params.get('rate_basis', '')})",
                "",
            ]
            body = []
            for s in systems:
                row = [s]
                for q in ("p50", "p99", "p999"):
                    r = self.one(f"latency {q}", s, mode=mode)
                    row.append(f"{num(r.figure)}{spread(r)}" if r else "-")
                    if r is not None:
                        values[(f"{mode}\n{q}", s)] = r
                mine = self.one("latency p99", DOVECOTE, mode=mode)
                theirs = self.one("latency p99", s, mode=mode)
                row.append("-" if s == DOVECOTE else ratio(mine, theirs))
                r50 = self.one("latency p50", s, mode=mode)
                row.append(f"{r50.params.get('samples', 0):,}" if r50 else "-")
                body.append(row)
            lines += table(["system", "p50", "p99", "p999", "p99 ratio", "samples"], body)
            lines.append("")
            groups += [f"{mode}\n{q}" for q in ("p50", "p99", "p999")]
        chart = self.chart("latency.png")
        if chart is not None:
            from bench.charts import grouped_bars

            systems = list(dict.fromkeys(r.system for r in rows))
            grouped_bars(
                chart, "End-to-end latency (ms, log scale)", groups, systems, values, "ms", log=True
            )
            lines += self.image(chart, "latency")
        return lines

    # -- growth ---------------------------------------------------------------------------------

    def growth_section(self) -> list[str]:
        rows = [r for r in self.results if r.name.startswith("growth ")]
        if not rows:
            return []
        lines = [
            "## How cost grows",
            "",
            "Durable produce of 1 KiB records spread round-robin over N topics (streams, "
            "keys) of one partition each, and over N producer connections to one topic. "
            "Throughput [min..max], the broker's CPU per record and its resident memory "
            "at the end. Creating the N topics is timed separately.",
            "",
        ]
        panels = []
        for name, label in (("growth topics", "topics"), ("growth connections", "connections")):
            found = [r for r in rows if r.name == name]
            if not found:
                continue
            systems = list(dict.fromkeys(r.system for r in found))
            ns = sorted({r.params["n"] for r in found})
            body = []
            for n in ns:
                row = [str(n)]
                for s in systems:
                    r = self.one(name, s, n=n)
                    if r is None:
                        row.append("-")
                        continue
                    cell = (
                        f"{num(r.figure)}{spread(r)} rec/s<br>"
                        f"{num(r.params.get('cpu_us_per_record'), 1)} µs/rec, "
                        f"{num(r.params.get('rss_mib'))} MiB"
                    )
                    if r.params.get("create_s") is not None and name == "growth topics":
                        cell += f"<br>created in {r.params['create_s']:.2f} s"
                    row.append(cell)
                body.append(row)
            lines += [f"### {label.capitalize()}", ""]
            lines += table([label, *systems], body)
            lines.append("")
            panels.append(
                (
                    label,
                    {
                        s: [(r.params["n"], r.figure) for r in found if r.system == s]
                        for s in systems
                    },
                )
            )
        chart = self.chart("growth.png")
        if chart is not None and panels:
            from bench.charts import lines as line_chart

            line_chart(
                chart,
                "Durable produce throughput as topics and connections grow",
                panels,
                "records/s",
            )
            lines += self.image(chart, "growth")
        return lines

    # -- storage, groups, amqp ------------------------------------------------------------------

    def storage_section(self) -> list[str]:
        rows = [r for r in self.results if r.name.startswith("storage ")]
        if not rows:
            return []
        keys = list(dict.fromkeys(r.name for r in rows))
        sizes = sorted({r.params["batch_bytes"] for r in rows})
        lines = [
            "## Storage engine vs raw file I/O",
            "",
            "Dovecote's log (in process, no network) against plain file calls on the "
            "same bytes: 1 KiB records in batches of the given size. MiB/s, median [min..max].",
            "",
        ]
        header = ["batch"] + [rows[[r.name for r in rows].index(k)].params["what"] for k in keys]
        body = []
        for size in sizes:
            row = [f"{size >> 10} KiB"]
            for k in keys:
                r = self.one(k, batch_bytes=size)
                row.append(f"{num(r.figure)}{spread(r)}" if r else "-")
            body.append(row)
        lines += table(header, body)
        return [*lines, ""]

    def groups_section(self) -> list[str]:
        rows = [r for r in self.results if r.name.startswith("group ")]
        if not rows:
            return []
        names = list(dict.fromkeys(r.name for r in rows))
        systems = list(dict.fromkeys(r.system for r in rows))
        lines = [
            "## Consumer groups",
            "",
            "Seconds, median [min..max]. Failover is bounded below by the 6 s session "
            "timeout; the broker's own share is what is above it.",
            "",
        ]
        body = []
        for name in names:
            found = {s: self.one(name, s) for s in systems}
            row = [name] + [f"{num(f.figure)}{spread(f)}" if f else "-" for f in found.values()]
            body.append(row)
        lines += table(["figure", *systems], body)
        return [*lines, ""]

    def amqp_section(self) -> list[str]:
        rows = [r for r in self.results if r.name.startswith("amqp.")]
        if not rows:
            return []
        lines = [
            "## AMQP vs RabbitMQ",
            "",
            "pika and aio-pika against Dovecote's AMQP listener and RabbitMQ, same client "
            "code (bench/amqp.py). Messages per second, median [min..max]; ratio = "
            "Dovecote ÷ RabbitMQ.",
            "",
        ]
        body = []
        for name in dict.fromkeys(r.name for r in rows):
            mine, theirs = self.one(name, "dovecote"), self.one(name, "rabbitmq")
            any_r = mine or theirs
            row = [
                any_r.params.get("workload", name),
                any_r.params.get("client", ""),
                f"{num(mine.figure)}{spread(mine)}" if mine else "-",
                f"{num(theirs.figure)}{spread(theirs)}" if theirs else "-",
                ratio(mine, theirs),
            ]
            lat = [r.params.get("confirm_latency_ms", {}).get("p99") for r in (mine, theirs) if r]
            row.append(" / ".join(num(x) for x in lat if x is not None) or "-")
            body.append(row)
        lines += table(
            [
                "workload",
                "client",
                "Dovecote msg/s",
                "RabbitMQ msg/s",
                "ratio",
                "confirm p99 ms (D / R)",
            ],
            body,
            "llrrrr",
        )
        return [*lines, ""]

    def timers_section(self) -> list[str]:
        """TTL dead-lettering against the goal of issue 12 and against RabbitMQ (bench/timers.py)."""
        rows = [r for r in self.results if r.name.startswith("timers.")]
        if not rows:
            return []
        any_r = rows[0]
        ttl, idle = any_r.params.get("ttl_ms", 300), any_r.params.get("idle", 0)
        goal = ttl + 50
        theirs = self.one("timers.ttl.wire", "rabbitmq")
        lines = [
            "## Timers: TTL dead-lettering",
            "",
            f"A {ttl} ms message TTL, with {idle:,} idle queues present: a queue with "
            "`x-message-ttl` dead-letters through an exchange into a queue with a consumer; "
            "messages are published one by one, spread over time, each carrying its publish "
            "time in a header; the figure is publish → arrival at the dead-letter consumer. "
            "Over the wire: pika against Dovecote's AMQP listener and RabbitMQ, the same "
            "code, one broker up at a time. In process: Dovecote's core without the wire "
            f"(bench/timers.py). The goal (issue 12): p99 ≤ {goal} ms, i.e. at most 50 ms "
            "late. Ratio = Dovecote's p99 ÷ RabbitMQ's p99 over the wire (below 1: "
            "Dovecote quicker). One run each, ms.",
            "",
        ]
        body = []
        for name, system, label in (
            ("timers.ttl.wire", "dovecote", "Dovecote, pika over AMQP"),
            ("timers.ttl.wire", "rabbitmq", "RabbitMQ, pika over AMQP"),
            ("timers.ttl.core", "dovecote", "Dovecote core, in process"),
        ):
            r = self.one(name, system)
            if r is None or not r.params.get("count"):
                continue
            met = "yes" if r.figure <= goal else "**no**"
            body.append(
                [
                    label,
                    f"{r.params['p50']:.1f}",
                    f"{r.params['p99']:.1f}",
                    f"{r.params['max']:.1f}",
                    f"{r.figure - ttl:.1f}",
                    f"{r.params['count']:,}"
                    + (
                        f" of {sent:,}"
                        if (sent := r.params.get("sent", 0)) > r.params["count"]
                        else ""
                    ),
                    met,
                    ratio(r, theirs) if (system, name) == ("dovecote", "timers.ttl.wire") else "-",
                ]
            )
        lines += table(
            [
                "system",
                "p50",
                "p99",
                "max",
                "p99 late",
                "messages",
                f"p99 ≤ {goal} ms",
                "p99 ÷ RabbitMQ",
            ],
            body,
            "lrrrrrcr",
        )
        lines.append("")
        extra = []
        for name, label in (
            ("timers.ttl-timer-late.core", "TTL timer fired, ms after due (before the DLQ append)"),
            ("timers.lease.core", "lease expiry: pull → redelivery"),
            ("timers.loop-lag.core", "event loop lag: how late a 5 ms sleep wakes"),
        ):
            r = self.one(name, "dovecote")
            if r is not None and r.params.get("count"):
                extra.append(
                    [
                        label,
                        f"{r.params['p50']:.1f}",
                        f"{r.params['p99']:.1f}",
                        f"{r.params['max']:.1f}",
                        f"{r.params['count']:,}",
                    ]
                )
        if extra:
            lines += ["Dovecote's core in process, the other timers:", ""]
            lines += table(["figure", "p50", "p99", "max", "samples"], extra)
            lines.append("")
        lines += ["```sh", any_r.command, "```", ""]
        return lines

    def sqs_section(self) -> list[str]:
        """SQS with boto3 against Dovecote and moto_server (bench/sqs.py), against issue 13's goals."""
        rows = [r for r in self.results if r.name.startswith("sqs.")]
        if not rows:
            return []
        from bench.sqs import GOAL_BROKER_US, GOAL_P99_MS, GOAL_RATIO

        any_r = rows[0]
        p = any_r.params
        systems = list(dict.fromkeys(r.system for r in rows))
        lines = [
            "## SQS with boto3: Dovecote vs moto_server",
            "",
            "The same boto3 code (bench/sqs.py, bench/sqs_load.py) against Dovecote's SQS "
            "listener and moto_server, each its own process on a free loopback port, one after "
            f"the other. Throughput: {p.get('size', 1024):,} B bodies sent with "
            f"`send_message_batch` ({p.get('batch', 10)} per call) from {p.get('clients')} "
            f"client processes x {p.get('threads')} threads (one boto3 client each), then "
            "`receive_message(MaxNumberOfMessages=10, WaitTimeSeconds=1)` + "
            "`delete_message_batch` until all are deleted; messages/s from the phase's start to "
            "its last call that moved messages, one run each. A phase stops after "
            f"{p.get('max_seconds', 0):g} s even if unfinished (marked short: moto's send and "
            "receive cost grows with its queue's depth, so a short run measured it at a "
            "shallower queue than the other system). Broker and client CPU: user + system time "
            "of the broker's process and of the client processes over the phase, per message, "
            "and how many CPUs each kept busy (when the clients use most of the machine, they "
            "cap every system alike). Latency: one `send_message` to an empty queue while a "
            "receiver (its own process) already waits in `receive_message(WaitTimeSeconds=20)`; from the "
            "send's start (and from its return) to the receive's return. **Durability "
            "differs**: Dovecote answers a send after its records are fsynced (the default "
            "flush policy, `--flush ack`); moto keeps everything in memory, nothing on disk.",
            "",
        ]
        lines += table(
            ["system", "configured as", "a send's answer means", "load average at start"],
            (
                [
                    s,
                    r.params.get("setting", ""),
                    r.params.get("promise", ""),
                    num(r.params.get("load_1min")),
                ]
                for s in systems
                if (r := next(x for x in rows if x.system == s))
            ),
            "lllr",
        )
        lines.append("")
        body = []
        for name, label in (
            ("sqs.send", "send, batches of 10"),
            ("sqs.receive", "receive + delete"),
        ):
            mine = self.one(name, DOVECOTE)
            theirs = self.one(name, "moto")
            if mine is None and theirs is None:
                continue
            row = [label]
            for r in (mine, theirs):
                if r is None:
                    row.append("-")
                    continue
                cell = f"{num(r.figure)}"
                if not r.params.get("complete", True):
                    cell += f" (short: {r.params['messages']:,} of {r.params['target']:,})"
                if r.params.get("duplicates"):
                    cell += f" ({r.params['duplicates']:,} delivered twice)"
                cell += (
                    f"<br>broker {num(r.params.get('broker_us_per_msg'), 1)} µs/msg "
                    f"({r.params.get('broker_cpus', 0):.2f} CPUs)"
                    f"<br>clients {num(r.params.get('client_us_per_msg'), 1)} µs/msg "
                    f"({r.params.get('client_cpus', 0):.2f} CPUs)"
                )
                row.append(cell)
            ok_ratio = ok_cpu = "-"
            if mine is not None and theirs is not None and theirs.figure:
                x = mine.figure / theirs.figure
                row.append(f"{x:.1f}")
                ok_ratio = "yes" if x >= GOAL_RATIO else "**no**"
            else:
                row.append("-")
            if mine is not None:
                ok_cpu = (
                    "yes"
                    if mine.params.get("broker_us_per_msg", 1e9) <= GOAL_BROKER_US
                    else "**no**"
                )
            body += [[*row, ok_ratio, ok_cpu]]
        if body:
            lines += table(
                [
                    "phase",
                    "Dovecote msg/s",
                    "moto msg/s",
                    "Dovecote ÷ moto",
                    f"≥ {GOAL_RATIO:.0f}x",
                    f"broker ≤ {GOAL_BROKER_US:.0f} µs/msg",
                ],
                body,
                "lrrrcc",
            )
            lines.append("")
        body = []
        for system in systems:
            r = self.one("sqs.latency", system)
            if r is None or not r.params.get("count"):
                continue
            body.append(
                [
                    system,
                    f"{r.params['p50']:.2f}",
                    f"{r.params['p99']:.2f}",
                    f"{r.params['max']:.2f}",
                    f"{r.params['after_return_p50']:.2f} / {r.params['after_return_p99']:.2f}",
                    f"{r.params['count']:,}",
                    ("yes" if r.figure <= GOAL_P99_MS else "**no**") if system == DOVECOTE else "-",
                ]
            )
        if body:
            lines += [
                "Long-polled receive after a send, ms (from the send's start; the fifth column "
                "from the send's return: negative when the waiting receive returned before the "
                "sender had its answer):",
                "",
            ]
            lines += table(
                [
                    "system",
                    "p50",
                    "p99",
                    "max",
                    "after return p50 / p99",
                    "rounds",
                    f"p99 ≤ {GOAL_P99_MS:g} ms",
                ],
                body,
                "lrrrrrc",
            )
            lines.append("")
        problems = []
        for r in rows:
            texts = r.params.get("error_texts") or []
            if r.params.get("errors") or r.params.get("failed_entries") or texts:
                problems.append(
                    f"- {r.system} {r.name}: {r.params.get('errors', 0)} failed calls, "
                    f"{r.params.get('failed_entries', 0)} failed entries"
                    + "".join(f"; `{t}`" for t in texts)
                )
        if problems:
            lines += ["Errors seen:", "", *problems, ""]
        lines += ["```sh", any_r.command, "```", ""]
        return lines

    def pubsub_section(self) -> list[str]:
        """google-cloud-pubsub against Dovecote and Google's emulator (bench/pubsub.py),
        against issue 14's goals."""
        rows = [r for r in self.results if r.name.startswith("pubsub.")]
        if not rows:
            return []
        from bench.pubsub import GOAL_RATIO

        measured = [r for r in rows if r.name != "pubsub.unavailable"]
        p = measured[0].params if measured else {}
        lines = [
            "## Pub/Sub with google-cloud-pubsub: Dovecote vs Google's emulator",
            "",
            "The same google-cloud-pubsub code (bench/pubsub.py, bench/pubsub_load.py), "
            "`PUBSUB_EMULATOR_HOST` pointed at Dovecote's Pub/Sub listener and at Google's "
            "emulator (`cloud-pubsub-emulator`, Java), each its own process on a free "
            "loopback port, one after the other. For each message size: publish from "
            f"{p.get('clients', '?')} client processes, each a `PublisherClient` batching up "
            f"to {p.get('batch', 1000):,} messages, {p.get('batch_bytes', 0) / 1e6:g} MB or "
            f"{p.get('batch_latency_ms', 10):g} ms per request, every future waited for; "
            "again with Publish requests built and serialized once and sent as bytes over a "
            'plain gRPC channel, four calls in flight per process ("pre-built requests": the '
            "PublisherClient costs the client about 30 us of CPU a message, which on 2 cores "
            "caps both systems near the same figure; this shows what each broker takes); then "
            f"the same messages pulled by {p.get('clients', '?')} processes with "
            "`SubscriberClient.subscribe` (StreamingPull) and `FlowControl(max_messages="
            f"{p.get('flow_messages', 1000):,})`, the callback acking each, until all are "
            "received. Messages/s from the phase's start to its last message, one run "
            f"each; a phase stops after {p.get('max_seconds', 0):g} s (marked short). The "
            "subscribers' channel takes responses of any size (as the client's channel to "
            "Google does; its emulator channel caps them at 4 MiB, which Google's emulator "
            "exceeds with 64 KiB messages). Broker and client CPU: user + system time of the "
            "broker (the emulator's JVM) and of the client processes over the phase, per "
            "message, and how many CPUs each kept busy: on this machine the Python clients "
            "can be what limits both. Latency: 1 KiB messages at a fixed rate from one "
            "unbatched publisher, received by a subscriber in its own process; the "
            "publish() call to the callback. **Durability differs**: Dovecote answers a "
            "publish after its records are fsynced (`--flush ack`); the emulator keeps "
            "everything in memory.",
            "",
        ]
        systems = list(dict.fromkeys(r.system for r in measured))
        lines += table(
            ["system", "version", "configured as", "a publish's answer means", "load at start"],
            (
                [
                    s,
                    r.params.get("version", ""),
                    r.params.get("setting", ""),
                    r.params.get("promise", ""),
                    num(r.params.get("load_1min")),
                ]
                for s in systems
                if (r := next(x for x in measured if x.system == s))
            ),
            "llllr",
        )
        lines.append("")
        for r in rows:
            if r.name == "pubsub.unavailable":
                lines += [f"**{r.system} unavailable**: {r.params.get('reason', '?')}", ""]
        body = []
        sizes = list(dict.fromkeys(r.params.get("size") for r in measured if "size" in r.params))
        for name, label in (
            ("pubsub.publish", "publish"),
            ("pubsub.rawpublish", "publish, pre-built requests"),
            ("pubsub.pull", "streaming pull + ack"),
        ):
            for size in sizes:
                mine = self.one(name, DOVECOTE, size=size)
                theirs = self.one(name, "emulator", size=size)
                if mine is None and theirs is None:
                    continue
                row = [f"{label}, {size_text(size) if size < 65536 else '64 KiB'}"]
                for r in (mine, theirs):
                    row.append("-" if r is None else self._pubsub_cell(r))
                if mine is not None and theirs is not None and theirs.figure:
                    x = mine.figure / theirs.figure
                    row += [f"{x:.2f}", "yes" if x >= GOAL_RATIO else "**no**"]
                else:
                    row += ["-", "-"]
                body.append(row)
        if body:
            lines += table(
                [
                    "phase",
                    "Dovecote msg/s",
                    "emulator msg/s",
                    "Dovecote ÷ emulator",
                    f"≥ {GOAL_RATIO:g}x",
                ],
                body,
                "lrrrc",
            )
            lines.append("")
        body = []
        rates = list(
            dict.fromkeys(r.params["rate"] for r in measured if r.name == "pubsub.latency")
        )
        for rate in rates:
            theirs = self.one("pubsub.latency", "emulator", rate=rate)
            for system in systems:
                r = self.one("pubsub.latency", system, rate=rate)
                if r is None or not r.params.get("count"):
                    continue
                goal = "-"
                if system == DOVECOTE and theirs is not None and theirs.params.get("count"):
                    goal = "yes" if r.figure <= theirs.figure else "**no**"
                q = r.params
                body.append(
                    [
                        f"{rate:g}",
                        system,
                        f"{q['p50']:.2f}",
                        f"{q['p99']:.2f}",
                        f"{q['max']:.2f}",
                        f"{num(q.get('broker_us_per_msg'), 1)} ({q.get('broker_cpus', 0):.2f})",
                        f"{q.get('client_cpus', 0):.2f}",
                        f"{q.get('late_ms', 0):.1f}",
                        f"{q['count']:,}" + (f" ({q['lost']:,} lost)" if q.get("lost") else ""),
                        goal,
                    ]
                )
        if body:
            lines += [
                "End-to-end latency, ms (publish() call to callback, 1 KiB), with the broker's "
                "CPU per message (and CPUs busy), the clients' CPUs busy and how far the "
                "publisher fell behind its schedule at worst:",
                "",
            ]
            lines += table(
                [
                    "msg/s",
                    "system",
                    "p50",
                    "p99",
                    "max",
                    "broker µs/msg (CPUs)",
                    "client CPUs",
                    "publisher late, ms",
                    "messages",
                    "p99 ≤ emulator's",
                ],
                body,
                "rlrrrrrrrc",
            )
            lines.append("")
        problems = []
        for r in measured:
            texts = r.params.get("error_texts") or []
            if r.params.get("errors") or texts:
                size = r.params.get("size")
                problems.append(
                    f"- {r.system} {r.name} {size} B: {r.params.get('errors', 0)} errors"
                    + "".join(f"; `{t}`" for t in texts[:3])
                )
        if problems:
            lines += ["Errors seen:", "", *problems, ""]
        lines += ["```sh", rows[0].command, "```", ""]
        return lines

    @staticmethod
    def _pubsub_cell(r: Result) -> str:
        cell = num(r.figure)
        if not r.params.get("complete", True):
            cell += f" (short: {r.params['messages']:,} of {r.params['target']:,})"
        if r.params.get("duplicates"):
            cell += f" ({r.params['duplicates']:,} delivered twice)"
        return cell + (
            f"<br>broker {num(r.params.get('broker_us_per_msg'), 1)} µs/msg "
            f"({r.params.get('broker_cpus', 0):.2f} CPUs)"
            f"<br>clients {num(r.params.get('client_us_per_msg'), 1)} µs/msg "
            f"({r.params.get('client_cpus', 0):.2f} CPUs)"
        )

    # -- profile ---------------------------------------------------------------------------------

    def profile_section(self) -> list[str]:
        rows = [r for r in self.results if r.name.startswith("profile ")]
        if not rows:
            return []
        lines = [
            "## Where Dovecote's time goes",
            "",
            "py-spy sampling the broker process (`py-spy record -f raw`, all threads, idle "
            "time left out) while the Kafka workloads run against it; the share of samples "
            "in which a function was running itself (self) and on the stack (total). "
            "bench/profile.py aggregates the raw stacks; the raw files are in "
            "bench/results/.",
            "",
        ]
        for scenario in dict.fromkeys(r.params["scenario"] for r in rows):
            found = [r for r in rows if r.params["scenario"] == scenario]
            first = found[0]
            lines += [
                f"### {scenario}",
                "",
                f"{first.params.get('describe', '')} {first.params.get('samples', 0):,} samples.",
                "",
            ]
            for kind in ("self", "total"):
                ranked = sorted(
                    (r for r in found if r.params["kind"] == kind), key=lambda r: -r.figure
                )
                if ranked:
                    lines += table(
                        [f"{kind} %", "function (file)"],
                        ([f"{r.figure:.1f}", f"`{r.params['frame']}`"] for r in ranked),
                        "rl",
                    )
                    lines.append("")
        return lines

    def commands_section(self) -> list[str]:
        commands = list(dict.fromkeys(r.command for r in self.results if r.command))
        lines = [
            "## Reproducing",
            "",
            "`make bench` installs the peers (scripts/install-bench-deps.sh) and runs "
            "`python -m bench`; `python -m bench --quick` is a smoke run; `python -m bench "
            "--only streams` runs one step; `python -m bench --report-only` rewrites this "
            "file from the last run's results. The commands that produced this run's "
            "figures:",
            "",
            "```sh",
            *commands,
            "```",
            "",
        ]
        return lines

    def render(self) -> str:
        parts = [
            self.header(),
            self.glance_section(),
            self.run_section(),
            self.changes_section(),
            self.targets_section(),
            self.limits_section(),
            self.throughput_section(),
            self.latency_section(),
            self.growth_section(),
            self.amqp_section(),
            self.timers_section(),
            self.sqs_section(),
            self.pubsub_section(),
            self.groups_section(),
            self.storage_section(),
            self.profile_section(),
            self.commands_section(),
        ]
        return "\n".join(line for part in parts for line in part).rstrip() + "\n"


def write(run_id: str | None = None, docs: Path | None = None) -> Path:
    """Write docs/benchmarks.md (and docs/benchmarks/*.png) for ``run_id`` (default: latest)."""
    docs = docs or Path(__file__).resolve().parent.parent / "docs"
    run_id, run, results = load_run(run_id)
    report = Report(run_id, run, results, docs)
    for old in report.charts_dir.glob("*.png") if report.charts_dir.exists() else ():
        old.unlink()
    text = report.render()
    docs.mkdir(parents=True, exist_ok=True)
    target = docs / "benchmarks.md"
    target.write_text(text)
    return target
