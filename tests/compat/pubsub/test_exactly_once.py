"""Exactly-once delivery with the real google-cloud-pubsub clients: acks and
modacks of stale or malformed ack ids fail with INVALID_ARGUMENT and an
``ErrorInfo`` naming each failed id; an acked message is never delivered
again; a live lease is never handed to anyone else."""

from __future__ import annotations

import threading
import time

import pytest
from google.api_core import exceptions
from google.cloud.pubsub_v1.subscriber import exceptions as sub_errors
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.compat.pubsub.conftest import PROJECT
from tests.compat.pubsub.test_delivery import pull, pull_now

MESSAGE = "Some acknowledgement ids in the request were invalid."


@pytest.fixture
def exactly_once(subscriber, topic, name) -> str:
    path = subscriber.subscription_path(PROJECT, name)
    subscriber.create_subscription(
        request={"name": path, "topic": topic, "enable_exactly_once_delivery": True}
    )
    return path


def failed_ids(error: exceptions.GoogleAPICallError) -> dict[str, str]:
    """The ErrorInfo metadata, read from the status the way the client does."""
    status = rpc_status.from_call(error.response)
    assert status is not None
    (detail,) = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert info.reason == "EXACTLY_ONCE_ACKID_FAILURE"
    return dict(info.metadata)


def test_a_second_ack_fails_and_names_the_ack_id(publisher, subscriber, topic, exactly_once):
    publisher.publish(topic, b"once").result()
    (message,) = pull(subscriber, exactly_once)
    subscriber.acknowledge(subscription=exactly_once, ack_ids=[message.ack_id])
    with pytest.raises(exceptions.InvalidArgument, match=MESSAGE) as caught:
        subscriber.acknowledge(subscription=exactly_once, ack_ids=[message.ack_id])
    assert failed_ids(caught.value) == {message.ack_id: "PERMANENT_FAILURE_INVALID_ACK_ID"}
    with pytest.raises(exceptions.InvalidArgument) as caught:
        subscriber.modify_ack_deadline(
            subscription=exactly_once, ack_ids=[message.ack_id], ack_deadline_seconds=30
        )
    assert failed_ids(caught.value) == {message.ack_id: "PERMANENT_FAILURE_INVALID_ACK_ID"}
    assert pull_now(subscriber, exactly_once) == []


def test_a_late_ack_fails_after_the_message_went_to_someone_else(
    publisher, subscriber, topic, exactly_once
):
    publisher.publish(topic, b"slow").result()
    (first,) = pull(subscriber, exactly_once)
    # Its lease is valid: nobody else receives it meanwhile.
    assert pull_now(subscriber, exactly_once) == []
    subscriber.modify_ack_deadline(
        subscription=exactly_once, ack_ids=[first.ack_id], ack_deadline_seconds=1
    )
    time.sleep(1.2)
    (second,) = pull(subscriber, exactly_once)
    assert second.message.message_id == first.message.message_id
    assert second.ack_id != first.ack_id
    # One request with both: the stale one fails alone, the live one is acked.
    with pytest.raises(exceptions.InvalidArgument) as caught:
        subscriber.acknowledge(subscription=exactly_once, ack_ids=[first.ack_id, second.ack_id])
    assert failed_ids(caught.value) == {first.ack_id: "PERMANENT_FAILURE_INVALID_ACK_ID"}
    time.sleep(0.2)
    assert pull_now(subscriber, exactly_once) == []  # acked: never delivered again


def test_a_malformed_ack_id_fails_alone(publisher, subscriber, topic, exactly_once):
    publisher.publish(topic, b"m").result()
    (message,) = pull(subscriber, exactly_once)
    with pytest.raises(exceptions.InvalidArgument) as caught:
        subscriber.acknowledge(subscription=exactly_once, ack_ids=["not-an-ack-id", message.ack_id])
    assert failed_ids(caught.value) == {"not-an-ack-id": "PERMANENT_FAILURE_INVALID_ACK_ID"}
    assert pull_now(subscriber, exactly_once) == []


def test_without_exactly_once_a_stale_ack_succeeds(publisher, subscriber, topic, subscription):
    publisher.publish(topic, b"m").result()
    (message,) = pull(subscriber, subscription)
    subscriber.acknowledge(subscription=subscription, ack_ids=[message.ack_id])
    subscriber.acknowledge(subscription=subscription, ack_ids=[message.ack_id])


def test_ack_with_response_on_a_streaming_subscriber(publisher, subscriber, topic, exactly_once):
    outcomes: list[object] = []
    done = threading.Event()

    def callback(message):
        outcomes.append(message.ack_with_response().result(timeout=10))
        try:
            message.ack_with_response().result(timeout=10)  # the same ack id again
        except sub_errors.AcknowledgeError as error:
            outcomes.append(error.error_code)
        done.set()

    future = subscriber.subscribe(exactly_once, callback)
    try:
        publisher.publish(topic, b"streamed").result()
        assert done.wait(15)
    finally:
        future.cancel()
    assert outcomes == [
        sub_errors.AcknowledgeStatus.SUCCESS,
        sub_errors.AcknowledgeStatus.INVALID_ACK_ID,
    ]
    assert pull_now(subscriber, exactly_once) == []
