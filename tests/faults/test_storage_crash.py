"""Kill a durable appender with SIGKILL at random moments: after each restart
every acknowledged record is there, intact, at the offset it was acknowledged
with. Damage the tail of a log: the broker starts and keeps what is intact."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.storage.batch import Record, build_batch, scan_batches

ROUNDS = 8


def start_appender(data_dir: Path, first: int) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.appender", str(data_dir), str(first)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode())

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def read_everything(data_dir: Path) -> dict[tuple[int, int], bytes]:
    async def main():
        core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": data_dir}))
        await core.start()
        found = {}
        for partition in core.get_topic("crash").partitions:
            offset = 0
            while offset < partition.high_watermark:
                chunk = partition.read(offset, 1 << 20)
                data = chunk.read()
                scan_batches(data[: _whole(data)], check_crc=True)  # every stored batch is intact
                for record in partition.read_records(offset, 1 << 20):
                    found[(partition.index, record.offset)] = record.key
                    offset = record.offset + 1
        await core.stop()
        return found

    return asyncio.run(main())


def _whole(data: bytes) -> int:
    from dovecote.storage.batch import scan_prefix

    infos, _ = scan_prefix(data, check_crc=False)
    return infos[-1].position + infos[-1].size


def test_sigkill_never_loses_an_acknowledged_append(tmp_path, fault_report):
    seed = int(os.environ.get("DOVECOTE_FAULT_SEED") or random.SystemRandom().getrandbits(32))
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    acked: dict[int, tuple[int, int]] = {}
    missing: set[int] = set()
    next_n = 0
    for _round in range(ROUNDS):
        proc, lines = start_appender(data_dir, next_n)
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(0.05)  # let the pump drain the pipe
        for line in lines:
            if line.startswith("ACK "):
                _, n, partition, offset = line.split()
                acked[int(n)] = (int(partition), int(offset))
        next_n += 10_000_000 // ROUNDS
        stored = read_everything(data_dir)
        missing |= {n for n, where in acked.items() if stored.get(where) != b"%d" % n}
    fault_report(
        "crash loop (storage appender, SIGKILL)",
        runs=ROUNDS,
        acknowledged=len(acked),
        lost=len(missing),
        seed=seed,
    )
    assert not missing, (
        f"seed {seed}: {len(missing)} acknowledged appends lost, e.g. {sorted(missing)[:5]}"
    )
    assert len(acked) > 100, "the appender should have been acknowledged many times"


def test_damaged_tail_is_cut_and_the_broker_starts(tmp_path):
    async def write():
        core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}))
        await core.start()
        topic = await core.create_topic("t", 1)
        for i in range(20):
            await topic.partitions[0].append(build_batch([Record(b"%d" % i)]))
        await core.stop()
        return topic.partitions[0].log.active.log_path

    segment = asyncio.run(write())
    (tmp_path / ".clean-shutdown").unlink()
    for path in tmp_path.glob("topics/t/0/*.index"):
        path.unlink()
    raw = bytearray(segment.read_bytes())
    raw[-5] ^= 0xFF  # corrupt the last batch
    raw += b"\x00\x01torn"  # and leave a torn write after it
    segment.write_bytes(bytes(raw))

    async def check():
        core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}))
        await core.start()
        [report] = [r for r in core.recovery if r.bytes_cut]
        assert report.reason == "CRC mismatch"
        partition = core.get_topic("t").partitions[0]
        assert [r.value for r in partition.read_records(0)] == [b"%d" % i for i in range(19)]
        result = await partition.append(build_batch([Record(b"after")]))
        assert result.base_offset == 19
        await core.stop()

    asyncio.run(check())
