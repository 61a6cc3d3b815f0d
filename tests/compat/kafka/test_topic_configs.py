"""Kafka 3.x/4.x topic configs through confluent-kafka's AdminClient: created,
described back, and an empty cleanup.policy left by a SUBTRACT."""

from __future__ import annotations

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

NEW_CONFIGS = {
    "file.delete.delay.ms": "1000",
    "compression.zstd.level": "-5",
    "min.cleanable.dirty.ratio": "0.3",
    "message.timestamp.difference.max.ms": "3600000",
    "segment.index.bytes": "65536",
    "preallocate": "true",
}


def test_create_describe_and_subtract_cleanup_policy(broker, topic_name):
    admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
    new = NewTopic(topic_name, num_partitions=1, replication_factor=1, config=NEW_CONFIGS)
    admin.create_topics([new])[topic_name].result(30)
    resource = ConfigResource(ResourceType.TOPIC, topic_name)
    configs = admin.describe_configs([resource])[resource].result(30)
    for name, value in NEW_CONFIGS.items():
        assert configs[name].value == value
        assert not configs[name].is_default
    assert configs["segment.jitter.ms"].is_default
    assert configs["segment.jitter.ms"].value == "0"
    change = ConfigResource(
        ResourceType.TOPIC,
        topic_name,
        incremental_configs=[
            ConfigEntry(
                "cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT
            )
        ],
    )
    admin.incremental_alter_configs([change])[change].result(30)
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["cleanup.policy"].value == ""
    assert not configs["cleanup.policy"].is_default
    admin.delete_topics([topic_name])[topic_name].result(30)
