"""Subscription definitions with google-cloud-pubsub: Google's checks on
create, UpdateSubscription with update masks (applied to the live
subscription), retention settings, IAM policies going with the resource."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.iam.v1 import policy_pb2

from tests.compat.pubsub.conftest import PROJECT

DAY = 24 * 3600


def test_create_fills_in_googles_defaults(subscriber, topic, name):
    path = subscriber.subscription_path(PROJECT, name + "-d")
    created = subscriber.create_subscription(name=path, topic=topic)
    assert created.ack_deadline_seconds == 10
    assert created.message_retention_duration.total_seconds() == 7 * DAY
    assert created.expiration_policy.ttl.total_seconds() == 31 * DAY
    assert subscriber.get_subscription(subscription=path) == created


@pytest.mark.parametrize(
    ("settings", "text"),
    [
        ({"ack_deadline_seconds": 601}, "ack_deadline_seconds"),
        ({"ack_deadline_seconds": 5}, "ack_deadline_seconds"),
        ({"message_retention_duration": {"seconds": 300}}, "message_retention_duration"),
        ({"message_retention_duration": {"seconds": 32 * DAY}}, "message_retention_duration"),
        ({"expiration_policy": {"ttl": {"seconds": 3600}}}, "at least 1 day"),
        (
            {
                "message_retention_duration": {"seconds": 3 * DAY},
                "expiration_policy": {"ttl": {"seconds": 2 * DAY}},
            },
            "greater than message_retention_duration",
        ),
        ({"labels": {"Bad": "x"}}, "Invalid label key"),
        ({"push_config": {"push_endpoint": "not a url"}}, "Unsupported push_endpoint"),
    ],
)
def test_create_rejects_out_of_range_settings(subscriber, topic, name, settings, text):
    path = subscriber.subscription_path(PROJECT, name + "-bad")
    with pytest.raises(exceptions.InvalidArgument, match=text):
        subscriber.create_subscription(request={"name": path, "topic": topic, **settings})
    with pytest.raises(exceptions.NotFound):
        subscriber.get_subscription(subscription=path)


def test_create_with_settings_and_an_empty_expiration_policy(subscriber, topic, name):
    path = subscriber.subscription_path(PROJECT, name + "-s")
    created = subscriber.create_subscription(
        request={
            "name": path,
            "topic": topic,
            "ack_deadline_seconds": 60,
            "retain_acked_messages": True,
            "message_retention_duration": {"seconds": 20 * DAY},
            "expiration_policy": {},
            "labels": {"team": "a"},
        }
    )
    assert created.ack_deadline_seconds == 60
    assert created.retain_acked_messages
    assert created.message_retention_duration.total_seconds() == 20 * DAY
    assert "ttl" not in created.expiration_policy  # never expires
    assert dict(created.labels) == {"team": "a"}


def test_topic_must_exist_and_another_project_may_subscribe(subscriber, topic, name):
    with pytest.raises(exceptions.NotFound, match="Resource not found"):
        subscriber.create_subscription(
            name=subscriber.subscription_path(PROJECT, name + "-x"), topic=topic + "-missing"
        )
    other = subscriber.subscription_path("other-project", name)
    assert subscriber.create_subscription(name=other, topic=topic).topic == topic


def test_update_needs_a_mask_of_mutable_fields(subscriber, subscription, topic):
    def update(sub: dict, paths: list[str]):
        return subscriber.update_subscription(
            request={"subscription": {"name": subscription, **sub}, "update_mask": {"paths": paths}}
        )

    with pytest.raises(exceptions.InvalidArgument, match="must contain a non-empty paths list"):
        update({"ack_deadline_seconds": 30}, [])
    for field, value in [
        ("filter", 'attributes.k = "v"'),
        ("topic", topic),
        ("enable_message_ordering", True),
        ("name", subscription),
        ("detached", True),
    ]:
        with pytest.raises(
            exceptions.InvalidArgument,
            match=f"the {field} field in the Subscription is not mutable",
        ):
            update({field: value}, [field])
    for path in ("bogus", "push_config.push_endpoint"):
        with pytest.raises(exceptions.InvalidArgument, match=f"{path} is not a known Subscription"):
            update({}, [path])
    with pytest.raises(exceptions.InvalidArgument, match="ack_deadline_seconds"):
        update({"ack_deadline_seconds": 700}, ["ack_deadline_seconds"])
    with pytest.raises(exceptions.NotFound):
        subscriber.update_subscription(
            request={
                "subscription": {"name": subscription + "-gone", "ack_deadline_seconds": 30},
                "update_mask": {"paths": ["ack_deadline_seconds"]},
            }
        )


def test_update_changes_only_the_masked_fields(subscriber, subscription):
    updated = subscriber.update_subscription(
        request={
            "subscription": {
                "name": subscription,
                "ack_deadline_seconds": 45,
                "labels": {"env": "test"},
                "retain_acked_messages": True,
                "message_retention_duration": {"seconds": 600},
            },
            "update_mask": {"paths": ["ack_deadline_seconds", "labels", "retain_acked_messages"]},
        }
    )
    assert updated.ack_deadline_seconds == 45
    assert dict(updated.labels) == {"env": "test"}
    assert updated.retain_acked_messages
    assert updated.message_retention_duration.total_seconds() == 7 * DAY  # not in the mask
    assert subscriber.get_subscription(subscription=subscription) == updated
    # A masked field the request leaves unset goes back to its default.
    reset = subscriber.update_subscription(
        request={
            "subscription": {"name": subscription},
            "update_mask": {"paths": ["ack_deadline_seconds", "labels"]},
        }
    )
    assert reset.ack_deadline_seconds == 10
    assert dict(reset.labels) == {}


def test_a_new_ack_deadline_applies_to_the_next_pulls(publisher, subscriber, topic, subscription):
    subscriber.update_subscription(
        request={
            "subscription": {"name": subscription, "ack_deadline_seconds": 600},
            "update_mask": {"paths": ["ack_deadline_seconds"]},
        }
    )
    publisher.publish(topic, b"held").result()
    first = subscriber.pull(subscription=subscription, max_messages=1, timeout=10)
    assert len(first.received_messages) == 1
    # Shorten it: a lease taken now would end after 10 s, the one held keeps 600 s.
    subscriber.update_subscription(
        request={
            "subscription": {"name": subscription, "ack_deadline_seconds": 10},
            "update_mask": {"paths": ["ack_deadline_seconds"]},
        }
    )
    again = subscriber.pull(subscription=subscription, max_messages=1, return_immediately=True)
    assert list(again.received_messages) == []


def test_expiration_policy_update_is_stored(subscriber, subscription):
    updated = subscriber.update_subscription(
        request={
            "subscription": {
                "name": subscription,
                "expiration_policy": {"ttl": {"seconds": 8 * DAY}},
            },
            "update_mask": {"paths": ["expiration_policy"]},
        }
    )
    assert updated.expiration_policy.ttl.total_seconds() == 8 * DAY
    with pytest.raises(exceptions.InvalidArgument, match="greater than message_retention"):
        subscriber.update_subscription(
            request={
                "subscription": {
                    "name": subscription,
                    "message_retention_duration": {"seconds": 9 * DAY},
                },
                "update_mask": {"paths": ["message_retention_duration"]},
            }
        )


def test_deleting_resources_deletes_their_policies(publisher, subscriber, topic, subscription):
    policy = policy_pb2.Policy(
        bindings=[policy_pb2.Binding(role="roles/pubsub.viewer", members=["allUsers"])]
    )
    for resource in (topic, subscription):
        publisher.set_iam_policy(request={"resource": resource, "policy": policy})
        assert publisher.get_iam_policy(request={"resource": resource}).bindings
    subscriber.delete_subscription(subscription=subscription)
    publisher.delete_topic(topic=topic)
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)
    for resource in (topic, subscription):
        assert not publisher.get_iam_policy(request={"resource": resource}).bindings


def test_retained_acked_messages_keep_the_log(broker, publisher, subscriber, topic, name):
    path = subscriber.subscription_path(PROJECT, name + "-r")
    subscriber.create_subscription(
        request={
            "name": path,
            "topic": topic,
            "retain_acked_messages": True,
            "message_retention_duration": {"seconds": 20 * DAY},
        }
    )
    log_topic = broker.broker.core.get_topic(topic.rsplit("/", 1)[1])
    assert log_topic.configs["retention.ms"] == str(20 * DAY * 1000)
    subscriber.delete_subscription(subscription=path)
    assert "retention.ms" not in log_topic.configs  # the broker default again


def test_a_subscription_shows_its_topics_retention(publisher, subscriber, name):
    topic = publisher.topic_path(PROJECT, name + "-kept")
    publisher.create_topic(request={"name": topic, "message_retention_duration": {"seconds": DAY}})
    path = subscriber.subscription_path(PROJECT, name + "-kept")
    created = subscriber.create_subscription(name=path, topic=topic)
    assert created.topic_message_retention_duration.total_seconds() == DAY
