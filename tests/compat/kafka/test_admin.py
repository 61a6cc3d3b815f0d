"""Topic administration through confluent-kafka's and kafka-python's admin clients."""

from __future__ import annotations

import confluent_kafka
import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType
from kafka.admin import NewTopic as KpNewTopic


def error_name(excinfo) -> str:
    return excinfo.value.args[0].name()


def test_create_describe_alter_delete(broker, topic_name):
    admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
    new = NewTopic(
        topic_name, num_partitions=2, replication_factor=1, config={"retention.ms": "3600000"}
    )
    admin.create_topics([new])[topic_name].result(30)
    metadata = admin.list_topics(topic_name, timeout=10).topics[topic_name]
    assert len(metadata.partitions) == 2
    resource = ConfigResource(ResourceType.TOPIC, topic_name)
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["retention.ms"].value == "3600000"
    assert configs["segment.bytes"].is_default
    # Incremental alter: set one, delete another.
    change = ConfigResource(
        ResourceType.TOPIC,
        topic_name,
        incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    )
    admin.incremental_alter_configs([change])[change].result(30)
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["retention.ms"].is_default
    admin.create_partitions([NewPartitions(topic_name, 5)])[topic_name].result(30)
    assert len(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 5
    admin.delete_topics([topic_name])[topic_name].result(30)
    assert topic_name not in admin.list_topics(timeout=10).topics


def test_admin_errors(broker, topic_name):
    admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
    admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(30)
    with pytest.raises(KafkaException) as err:
        admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(30)
    assert error_name(err) == "TOPIC_ALREADY_EXISTS"
    with pytest.raises(KafkaException) as err:
        admin.create_topics([NewTopic("bad name!", 1, 1)])["bad name!"].result(30)
    assert (
        error_name(err) == "TOPIC_EXCEPTION"
    )  # librdkafka's name for INVALID_TOPIC_EXCEPTION (17)
    with pytest.raises(KafkaException) as err:
        admin.create_topics([NewTopic(topic_name + "x", 1, 3)])[topic_name + "x"].result(30)
    assert error_name(err) == "INVALID_REPLICATION_FACTOR"
    with pytest.raises(KafkaException) as err:
        admin.create_topics([NewTopic(topic_name + "y", 1, 1, config={"no.such": "1"})])[
            topic_name + "y"
        ].result(30)
    assert error_name(err) == "INVALID_CONFIG"
    with pytest.raises(KafkaException) as err:
        admin.create_partitions([NewPartitions(topic_name, 1)])[topic_name].result(30)
    assert error_name(err) == "INVALID_PARTITIONS"
    with pytest.raises(KafkaException) as err:
        admin.delete_topics(["__consumer_offsets"])["__consumer_offsets"].result(30)
    assert error_name(err) == "POLICY_VIOLATION"
    with pytest.raises(KafkaException) as err:
        admin.delete_topics(["never-created"])["never-created"].result(30)
    assert error_name(err) == "UNKNOWN_TOPIC_OR_PART"


def test_delete_records_moves_the_low_watermark(broker, topic_name):
    admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
    admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(30)
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.kafka_bootstrap})
    for i in range(50):
        producer.produce(topic_name, b"%d" % i)
    producer.flush(30)
    result = admin.delete_records([TopicPartition(topic_name, 0, 20)])
    [future] = result.values()
    assert future.result(30).low_watermark == 20
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": broker.kafka_bootstrap, "group.id": "dr"}
    )
    low, high = consumer.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10)
    consumer.close()
    assert (low, high) == (20, 50)


def test_kafka_python_admin(broker, topic_name):
    admin = KafkaAdminClient(bootstrap_servers=broker.kafka_bootstrap)
    admin.create_topics(
        [KpNewTopic(topic_name, 3, 1, topic_configs={"max.message.bytes": "2000000"})]
    )
    assert topic_name in admin.list_topics()

    def modified() -> dict[str, str]:
        described = admin.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, topic_name)])
        return {k: v["value"] for k, v in described["topic"][topic_name].items()}

    assert modified() == {"max.message.bytes": "2000000"}
    # IncrementalAlterConfigs: the other config stays.
    admin.alter_configs(
        [KpConfigResource(ConfigResourceType.TOPIC, topic_name, configs={"retention.ms": "1000"})]
    )
    assert modified() == {"max.message.bytes": "2000000", "retention.ms": "1000"}
    # Legacy AlterConfigs replaces the whole set (the client re-sends what it wants to keep).
    admin.alter_configs(
        [KpConfigResource(ConfigResourceType.TOPIC, topic_name, configs={"retention.ms": "2000"})],
        incremental=False,
    )
    assert modified()["retention.ms"] == "2000"
    assert admin.describe_configs(
        [KpConfigResource(ConfigResourceType.BROKER, "0")], config_filter="all"
    )
    admin.delete_topics([topic_name])
    assert topic_name not in admin.list_topics()
    admin.close()
