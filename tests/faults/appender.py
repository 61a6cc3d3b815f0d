"""Child process for crash tests: appends numbered records with durability and
prints ``ACK <n> <partition> <offset>`` for each acknowledged one, until killed."""

from __future__ import annotations

import asyncio
import sys

from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.storage.batch import Record, build_batch

PARTITIONS = 3
WRITERS = 16


async def main(data_dir: str, first: int) -> None:
    core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": data_dir}))
    await core.start()
    topic = await core.ensure_topic("crash", PARTITIONS)
    counter = iter(range(first, first + 10_000_000))
    out = sys.stdout

    async def writer() -> None:
        for n in counter:
            partition = topic.partitions[n % PARTITIONS]
            records = [Record(b"%d" % n + b"." * 200, key=b"%d" % n)]
            result = await partition.append(build_batch(records), durable=True)
            out.write(f"ACK {n} {partition.index} {result.base_offset}\n")
            out.flush()

    print("READY", flush=True)
    await asyncio.gather(*(writer() for _ in range(WRITERS)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
