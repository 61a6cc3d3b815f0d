"""Topic config validation: every Kafka 3.x/4.x topic config name is accepted
with a valid value, and values outside Kafka's type or range are refused."""

from __future__ import annotations

import pytest

from dovecote.core.config import TOPIC_CONFIGS, BrokerConfig, validate_topic_configs
from dovecote.core.errors import InvalidConfig

KAFKA_TOPIC_CONFIGS = {
    "cleanup.policy": "compact,delete",
    "compression.type": "zstd",
    "compression.gzip.level": "9",
    "compression.lz4.level": "17",
    "compression.zstd.level": "-131072",
    "delete.retention.ms": "1000",
    "file.delete.delay.ms": "0",
    "flush.messages": "10",
    "flush.ms": "1000",
    "follower.replication.throttled.replicas": "0:1,1:1",
    "index.interval.bytes": "4096",
    "leader.replication.throttled.replicas": "*",
    "local.retention.bytes": "-2",
    "local.retention.ms": "-2",
    "max.compaction.lag.ms": "1",
    "max.message.bytes": "2000000",
    "message.downconversion.enable": "TRUE",
    "message.format.version": "2.8",
    "message.timestamp.after.max.ms": "3600000",
    "message.timestamp.before.max.ms": "3600000",
    "message.timestamp.difference.max.ms": "3600000",
    "message.timestamp.type": "LogAppendTime",
    "min.cleanable.dirty.ratio": "0.25",
    "min.compaction.lag.ms": "0",
    "min.insync.replicas": "1",
    "preallocate": "false",
    "remote.log.copy.disable": "false",
    "remote.log.delete.on.disable": "false",
    "remote.storage.enable": "false",
    "retention.bytes": "-1",
    "retention.ms": "-1",
    "segment.bytes": "1048576",
    "segment.index.bytes": "4096",
    "segment.jitter.ms": "10",
    "segment.ms": "1",
    "unclean.leader.election.enable": "false",
}


def test_every_kafka_topic_config_is_known():
    assert set(KAFKA_TOPIC_CONFIGS) <= set(TOPIC_CONFIGS)


@pytest.mark.parametrize("name", sorted(KAFKA_TOPIC_CONFIGS))
def test_valid_value_is_accepted(name):
    assert validate_topic_configs({name: KAFKA_TOPIC_CONFIGS[name]}) == {
        name: KAFKA_TOPIC_CONFIGS[name]
    }


@pytest.mark.parametrize("name", sorted(TOPIC_CONFIGS))
def test_default_is_valid(name):
    TOPIC_CONFIGS[name].parse(BrokerConfig().topic_default(name))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("compression.gzip.level", "0"),
        ("compression.gzip.level", "10"),
        ("compression.lz4.level", "0"),
        ("compression.lz4.level", "18"),
        ("compression.zstd.level", "-131073"),
        ("compression.zstd.level", "23"),
        ("compression.type", "brotli"),
        ("cleanup.policy", "delete,forever"),
        ("message.timestamp.type", "NowTime"),
        ("file.delete.delay.ms", "-1"),
        ("file.delete.delay.ms", "ten"),
        ("flush.messages", "0"),
        ("local.retention.ms", "-3"),
        ("max.compaction.lag.ms", "0"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("min.cleanable.dirty.ratio", "half"),
        ("preallocate", "yes"),
        ("segment.index.bytes", "3"),
        ("segment.index.bytes", str(1 << 31)),
        ("max.message.bytes", str(1 << 31)),
        ("segment.jitter.ms", str(1 << 63)),
        ("leader.replication.throttled.replicas", "all"),
        ("retention.ms", "-2"),
    ],
)
def test_out_of_range_is_refused(name, value):
    with pytest.raises(InvalidConfig, match=f"invalid value for {name}"):
        validate_topic_configs({name: value})


def test_unknown_name_is_refused():
    with pytest.raises(InvalidConfig, match="unknown topic config"):
        validate_topic_configs({"no.such.config": "1"})


def test_empty_cleanup_policy_is_accepted():
    assert validate_topic_configs({"cleanup.policy": ""}) == {"cleanup.policy": ""}
    assert BrokerConfig().effective({"cleanup.policy": ""}, "cleanup.policy") == ""


def test_stored_only_configs_are_marked():
    assert not TOPIC_CONFIGS["file.delete.delay.ms"].applied
    assert TOPIC_CONFIGS["retention.ms"].applied
