"""The core facade: topics and their metadata across restarts, appends under
each flush policy, group commit, long polls."""

from __future__ import annotations

import asyncio

import pytest

from dovecote.core.broker import BrokerCore, topic_dir_name
from dovecote.core.clock import FakeClock
from dovecote.core.config import BrokerConfig
from dovecote.core.errors import (
    CorruptMessage,
    InvalidConfig,
    InvalidPartitions,
    InvalidRecord,
    MessageTooLarge,
    TopicExists,
    UnknownTopic,
)
from dovecote.core.topic import wait_for_appends
from dovecote.storage.batch import Record, build_batch


def run(coro):
    return asyncio.run(coro)


def core_for(tmp_path, clock: FakeClock | None = None, **kw) -> BrokerCore:
    config = BrokerConfig.load(env={}, overrides={"data_dir": tmp_path, **kw})
    return BrokerCore(config, clock=clock)


def test_topics_survive_a_restart_with_configs_and_data(tmp_path):
    async def first():
        core = core_for(tmp_path)
        await core.start()
        topic = await core.create_topic("orders", 3, {"retention.ms": "1000"})
        await topic.partitions[1].append(build_batch([Record(b"a"), Record(b"b")]))
        await core.stop()

    async def second():
        core = core_for(tmp_path)
        await core.start()
        topic = core.get_topic("orders")
        assert len(topic.partitions) == 3
        assert topic.config("retention.ms") == 1000
        assert topic.config("segment.bytes") == 1 << 30  # default
        assert [r.value for r in topic.partitions[1].read_records(0)] == [b"a", b"b"]
        assert not core.recovery  # clean shutdown: nothing rebuilt
        await core.stop()

    run(first())
    run(second())


def test_admin_errors(tmp_path):
    async def main():
        core = core_for(tmp_path)
        await core.start()
        await core.create_topic("t", 1)
        with pytest.raises(TopicExists):
            await core.create_topic("t", 1)
        with pytest.raises(InvalidPartitions):
            await core.create_topic("u", 0)
        with pytest.raises(InvalidConfig):
            await core.create_topic("u", 1, {"no.such.config": "1"})
        with pytest.raises(InvalidConfig):
            await core.create_topic("u", 1, {"retention.ms": "soon"})
        assert await core.create_topic("u", 1, validate_only=True) is None
        assert core.topic("u") is None
        with pytest.raises(UnknownTopic):
            await core.delete_topic("nope")
        with pytest.raises(InvalidPartitions):
            await core.create_partitions("t", 1)
        await core.stop()

    run(main())


def test_create_partitions_alter_and_delete(tmp_path):
    async def main():
        core = core_for(tmp_path)
        await core.start()
        await core.create_topic("t", 1)
        await core.create_partitions("t", 4)
        await core.alter_topic_configs("t", {"max.message.bytes": "100"})
        topic = core.get_topic("t")
        assert len(topic.partitions) == 4 and topic.max_message_bytes == 100
        with pytest.raises(MessageTooLarge):
            await topic.partitions[3].append(build_batch([Record(b"x" * 200)]))
        await core.alter_topic_configs("t", delete=["max.message.bytes"])
        assert topic.max_message_bytes == 1048588
        await core.delete_topic("t")
        assert core.topic("t") is None
        assert not (tmp_path / "topics" / "t").exists()
        await core.create_topic("t", 2)  # the name is free again
        await core.stop()
        core = core_for(tmp_path)
        await core.start()
        assert len(core.get_topic("t").partitions) == 2
        await core.stop()

    run(main())


def test_any_name_gets_a_safe_directory(tmp_path):
    assert topic_dir_name("orders.v1") == "orders.v1"
    assert topic_dir_name("..") == "%2E."
    assert "/" not in topic_dir_name("a/b")

    async def main():
        core = core_for(tmp_path)
        await core.start()
        await core.create_topic("queue with spaces/and slashes ✓", 1)
        await core.stop()
        core = core_for(tmp_path)
        await core.start()
        assert core.topic("queue with spaces/and slashes ✓") is not None
        await core.stop()

    run(main())


def test_bad_batches_are_rejected(tmp_path):
    async def main():
        core = core_for(tmp_path)
        await core.start()
        partition = (await core.create_topic("t", 1)).partitions[0]
        data = bytearray(build_batch([Record(b"x")]))
        data[-1] ^= 1
        with pytest.raises(CorruptMessage):
            await partition.append(bytes(data))
        with pytest.raises(InvalidRecord):
            await partition.append(b"")
        assert partition.log_end_offset == 0
        await core.stop()

    run(main())


def test_flush_policy_ack_shows_readers_only_durable_data_and_groups_fsyncs(tmp_path):
    async def main():
        core = core_for(tmp_path)
        await core.start()
        partition = (await core.create_topic("t", 1)).partitions[0]
        rounds_before = core.flusher.rounds
        results = await asyncio.gather(
            *(partition.append(build_batch([Record(b"%d" % i)])) for i in range(64))
        )
        assert sorted(r.base_offset for r in results) == list(range(64))
        assert partition.high_watermark == 64
        # 64 concurrent durable appends share a handful of fsync rounds.
        assert core.flusher.rounds - rounds_before <= 4
        await core.stop()

    run(main())


def test_flush_policy_never_exposes_at_once(tmp_path):
    async def main():
        core = core_for(tmp_path, flush="never")
        await core.start()
        partition = (await core.create_topic("t", 1)).partitions[0]
        rounds = core.flusher.rounds
        await partition.append(build_batch([Record(b"x")]))
        assert partition.high_watermark == 1
        assert core.flusher.rounds == rounds
        await core.stop()

    run(main())


def test_flush_policy_interval_fsyncs_in_the_background(tmp_path):
    async def main():
        core = core_for(tmp_path, clock=FakeClock())
        await core.start()
        topic = await core.create_topic("t", 1, {"flush.policy": "interval", "flush.ms": "50"})
        segment = topic.partitions[0].log.active
        # The flush loop still sleeps the default second (no interval topic before).
        await core.clock.advance(1)
        await topic.partitions[0].append(build_batch([Record(b"x")]))
        assert segment.synced_size < segment.size
        await core.clock.advance(0.049)
        await core.flusher.drain()
        assert segment.synced_size < segment.size
        await core.clock.advance(0.002)
        await core.flusher.drain()
        assert segment.synced_size == segment.size
        await core.stop()

    run(main())


def test_long_poll_wakes_on_append_and_times_out(tmp_path):
    async def main():
        core = core_for(tmp_path, clock=FakeClock())
        await core.start()
        topic = await core.create_topic("t", 2)
        waiting = asyncio.ensure_future(wait_for_appends(topic.partitions, 0.1, core.clock))
        await core.clock.advance(0.099)
        assert not waiting.done()
        await core.clock.advance(0.002)
        assert waiting.done() and waiting.result() is False
        waiting = asyncio.ensure_future(wait_for_appends(topic.partitions, 5, core.clock))
        await core.clock.advance(0)
        assert not waiting.done()
        await topic.partitions[1].append(build_batch([Record(b"x")]))
        assert await waiting is True
        assert not topic.partitions[0]._watchers and not topic.partitions[1]._watchers
        await core.stop()

    run(main())


def test_config_sources_and_listener_parsing(tmp_path):
    toml = tmp_path / "dovecote.toml"
    toml.write_text(
        'data_dir = "/srv/dc"\nflush = "interval"\n[listeners]\nkafka = "0.0.0.0:19092"\namqp = "off"\n'
        '[topic_defaults]\n"retention.ms" = "5"\n'
    )
    config = BrokerConfig.load(
        file=toml, env={"DOVECOTE_AMQP": "5673", "DOVECOTE_NUM_PARTITIONS": "3"}, overrides={}
    )
    assert str(config.data_dir) == "/srv/dc"
    assert config.listeners["kafka"] == "0.0.0.0:19092"
    assert config.listeners["amqp"] == "127.0.0.1:5673"  # the environment beats the file
    assert config.listeners["http"] == "127.0.0.1:8080"  # defaults stay on loopback
    assert config.num_partitions == 3
    assert config.topic_default("flush.policy") == "interval"
    assert config.topic_default("retention.ms") == "5"
    with pytest.raises(InvalidConfig):
        BrokerConfig.load(env={}, overrides={"listeners": {"kafka": "host:notaport"}})
    with pytest.raises(InvalidConfig):
        BrokerConfig.load(env={}, overrides={"no_such_setting": 1})


def test_a_second_broker_on_the_same_directory_is_refused(tmp_path):
    async def main():
        core = core_for(tmp_path)
        await core.start()
        with pytest.raises(RuntimeError, match="another broker"):
            await core_for(tmp_path).start()
        await core.stop()

    run(main())
