"""Pub/Sub topics and subscriptions as the admin API, /metrics and
`dovecote pubsub list` show them, against a broker process with the Pub/Sub
and HTTP listeners, driven by google-cloud-pubsub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from google.cloud import pubsub_v1

from dovecote.testing import BrokerProcess

PROJECT = "views"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    data = tmp_path_factory.mktemp("pubsub-admin") / "data"
    with BrokerProcess(data, listeners={"kafka": "off", "amqp": "off", "aws": "off"}) as proc:
        yield proc


@pytest.fixture(scope="module")
def clients(broker):
    before = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = broker.pubsub_host
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    yield publisher, subscriber
    publisher.stop()
    subscriber.close()
    if before is None:
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)
    else:
        os.environ["PUBSUB_EMULATOR_HOST"] = before


def get(broker, path: str):
    with urllib.request.urlopen(f"http://{broker.addresses['http']}{path}") as reply:
        body = reply.read()
    return body.decode() if path == "/metrics" else json.loads(body)


def cli(broker, *args: str) -> str:
    env = dict(os.environ, DOVECOTE_ADMIN_URL=f"http://{broker.addresses['http']}", COLUMNS="300")
    result = subprocess.run(
        [sys.executable, "-m", "dovecote", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_subscriptions_with_backlog_age_dlq_depth_and_push(broker, clients):
    publisher, subscriber = clients
    topic = publisher.topic_path(PROJECT, "orders")
    dead = publisher.topic_path(PROJECT, "orders-dead")
    publisher.create_topic(name=topic)
    publisher.create_topic(name=dead)
    dead_sub = subscriber.subscription_path(PROJECT, "orders-dead-sub")
    subscriber.create_subscription(name=dead_sub, topic=dead)
    work = subscriber.subscription_path(PROJECT, "orders-work")
    subscriber.create_subscription(
        request={
            "name": work,
            "topic": topic,
            "dead_letter_policy": {"dead_letter_topic": dead, "max_delivery_attempts": 5},
        }
    )
    push = subscriber.subscription_path(PROJECT, "orders-push")
    subscriber.create_subscription(
        request={
            "name": push,
            "topic": topic,
            "push_config": {"push_endpoint": "http://127.0.0.1:9/push"},
        }
    )
    for i in range(3):
        publisher.publish(topic, f"m{i}".encode()).result()
    publisher.publish(dead, b"dead").result()  # as if dead-lettered
    pulled = subscriber.pull(subscription=work, max_messages=1, timeout=10)
    assert len(pulled.received_messages) == 1
    time.sleep(1.1)

    subs = {s["name"]: s for s in get(broker, "/v1/pubsub/subscriptions")}
    row = subs[work]
    assert row["topic"] == topic and row["type"] == "pull"
    assert row["backlog"] == 3 and row["messages_in_flight"] == 1
    assert 1.0 <= row["oldest_unacked_age_s"] < 60
    assert row["dead_letter_topic"] == dead and row["dead_letter_depth"] == 1
    assert row["push_endpoint"] is None and row["push_health"] is None
    assert subs[push]["type"] == "push"
    assert subs[push]["push_endpoint"] == "http://127.0.0.1:9/push"
    health = subs[push]["push_health"]  # port 9 (discard) refuses: the pusher says so
    assert health["endpoint"] == "http://127.0.0.1:9/push" and health["running"]
    assert subs[dead_sub]["dead_letter_depth"] is None and subs[dead_sub]["backlog"] == 1

    topics = {t["name"]: t for t in get(broker, "/v1/pubsub/topics")}
    assert topics[topic]["messages"] == 3
    assert topics[topic]["subscriptions"] == sorted([push, work])

    # Once acked, nothing is unacked and nothing is old.
    subscriber.acknowledge(subscription=work, ack_ids=[pulled.received_messages[0].ack_id])
    while True:
        response = subscriber.pull(subscription=work, max_messages=10, return_immediately=True)
        if not response.received_messages:
            break
        subscriber.acknowledge(
            subscription=work, ack_ids=[m.ack_id for m in response.received_messages]
        )
    row = {s["name"]: s for s in get(broker, "/v1/pubsub/subscriptions")}[work]
    assert row["backlog"] == 0 and row["oldest_unacked_age_s"] is None

    metrics = get(broker, "/metrics")
    assert f'dovecote_pubsub_subscription_backlog{{subscription="{work}"}} 0' in metrics
    assert f'dovecote_pubsub_subscription_backlog{{subscription="{push}"}} 3' in metrics
    assert f'dovecote_pubsub_subscription_oldest_unacked_age_seconds{{subscription="{push}"}}' in (
        metrics
    )
    spec = get(broker, "/v1/openapi.json")
    assert "/v1/pubsub/subscriptions" in spec["paths"]

    out = cli(broker, "pubsub", "list")
    assert "orders-work" in out and "orders-push" in out and "http://127.0.0.1:9/push" in out
    assert "Pub/Sub topic" in out and "oldest unacked" in out
