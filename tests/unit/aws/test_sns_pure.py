"""The pure parts of SNS: delivery URLs, publish checks, the retry
schedule, endpoint shapes and the binding filter over both kinds of headers."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovecote.aws.errors import AwsError
from dovecote.aws.sns_filter import FilterPolicy
from dovecote.aws.sns_http import backoff_delay, retry_delay_s
from dovecote.aws.sns_messages import PublishView, subscribe_url, typed_attributes, unsubscribe_url
from dovecote.aws.sns_publish import check_attributes, check_message, check_subject
from dovecote.aws.sns_subscriptions import check_endpoint, filter_predicate
from dovecote.aws.sns_topics import Topic, check_attribute, effective_delivery_policy
from dovecote.core.routing import FANOUT, Binding, Exchange

ARN = "arn:aws:sns:us-east-1:000000000000:t"


# --- delivery URLs -----------------------------------------------------------------------


def test_subscribe_and_unsubscribe_urls_are_plain_query_gets():
    assert subscribe_url("http://h:1", ARN, "tok") == (
        "http://h:1/?Action=ConfirmSubscription&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A"
        "000000000000%3At&Token=tok&Version=2010-03-31"
    )
    assert unsubscribe_url("http://h", ARN + ":s") == (
        "http://h/?Action=Unsubscribe&SubscriptionArn=arn%3Aaws%3Asns%3Aus-east-1%3A"
        "000000000000%3At%3As&Version=2010-03-31"
    )


# --- filters over either publish -------------------------------------------------------


def test_filter_predicate_over_sns_and_amqp_headers():
    attrs = filter_predicate(FilterPolicy.parse('{"n": [{"numeric": [">", 5]}], "c": ["x"]}'))
    view = PublishView(
        {
            "n": {"DataType": "Number", "StringValue": "9"},
            "c": {"DataType": "String", "StringValue": "x"},
        },
        "body",
    )
    assert attrs("", view)
    assert dict(view) == {"n": "9", "c": "x"}
    assert attrs("", {"n": 9, "c": "x"})  # AMQP: numbers are Number, text String
    assert not attrs("", {"n": "9", "c": "x"})  # "9" is a String
    assert not attrs("", None)
    body = filter_predicate(FilterPolicy.parse('{"a": ["b"]}', "MessageBody"))
    assert body("", PublishView({}, '{"a": "b"}'))
    assert not body("", PublishView({}, '{"a": "c"}'))
    assert not body("", {"a": "b"})  # other protocols: no body to test


def test_typed_attributes_of_plain_headers():
    assert typed_attributes({"t": True, "f": 1.5, "s": "x", "b": b"\x00", "n": None}) == {
        "t": ("String", "true"),
        "f": ("Number", "1.5"),
        "s": ("String", "x"),
        "b": ("Binary", b"\x00"),
    }


def test_filtered_bindings_make_an_exchange_route_by_headers():
    exchange = Exchange("t", FANOUT)
    plain = Binding("t", "q1", "queue", "")
    assert exchange.add(plain) and not exchange.routes_by_headers
    filtered = Binding("t", "q2", "queue", "", (), lambda _k, _h: True)
    assert exchange.add(filtered) and exchange.routes_by_headers
    exchange.remove(Binding("t", "q2", "queue", ""))  # equal whatever the filter
    assert exchange.filtered == 0 and not exchange.routes_by_headers


# --- publish checks --------------------------------------------------------------------


def topic(fifo: bool = False, **attributes: str) -> Topic:
    return Topic("t.fifo" if fifo else "t", ARN, "000000000000", fifo, attributes)


def code_and_message(call, *args) -> tuple[str, str]:
    with pytest.raises(AwsError) as info:
        call(*args)
    return info.value.code, info.value.message


def test_subjects():
    check_subject(None)
    check_subject("Hello, world! (1)")
    for bad in ("", " lead", "a\nb", "é", "x" * 100, "tab\t"):
        assert code_and_message(check_subject, bad) == (
            "InvalidParameterException",
            "Invalid parameter: Subject",
        )


def test_attribute_checks_and_size():
    size = check_attributes(
        {
            "s": {"DataType": "String", "StringValue": "abc"},
            "n": {"DataType": "Number.int", "StringValue": "-1.5e3"},
            "b": {"DataType": "Binary", "BinaryValue": b"12"},
            "a": {"DataType": "String.Array", "StringValue": '["x"]'},
        }
    )
    assert size == (1 + 6 + 3) + (1 + 10 + 6) + (1 + 6 + 2) + (1 + 12 + 5)
    cases = {
        "AWS.x": {"DataType": "String", "StringValue": "v"},
        "a..b": {"DataType": "String", "StringValue": "v"},
        "n": {"DataType": "Number", "StringValue": "NaN"},
        "e": {"DataType": "String", "StringValue": ""},
        "b": {"DataType": "Binary", "StringValue": "v"},
    }
    for name, attr in cases.items():
        code, _ = code_and_message(check_attributes, {name: attr})
        assert code == "InvalidParameterValueException"


def test_check_message_fifo_rules():
    out = check_message(
        topic(True, ContentBasedDeduplication="true"),
        {
            "Message": "m",
            "MessageGroupId": "g",
        },
    )
    assert out.dedup_id == "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a"
    given_id = check_message(
        topic(True), {"Message": "m", "MessageGroupId": "g", "MessageDeduplicationId": "d"}
    )
    assert (given_id.group_id, given_id.dedup_id) == ("g", "d")
    standard = check_message(topic(), {"Message": "m", "MessageGroupId": "g"})
    assert standard.group_id is None and standard.dedup_id is None
    assert code_and_message(check_message, topic(True), {"Message": "m"})[1] == (
        "Invalid parameter: The MessageGroupId parameter is required for FIFO topics"
    )


def test_message_size_counts_attributes():
    limit = 256 * 1024
    check_message(topic(), {"Message": "x" * limit})
    entry = {
        "Message": "x" * (limit - 3),
        "MessageAttributes": {"a": {"DataType": "String", "StringValue": "y"}},
    }
    assert code_and_message(check_message, topic(), entry)[1] == (
        "Invalid parameter: Message too long"
    )


# --- topic attributes and delivery policy ------------------------------------------------


def test_topic_attribute_checks():
    assert check_attribute("ContentBasedDeduplication", "TRUE") == "true"
    assert check_attribute("SignatureVersion", "2") == "2"
    for name, value in (("SignatureVersion", "3"), ("Policy", "{"), ("FifoTopic", "yes")):
        assert code_and_message(check_attribute, name, value)[0] == "InvalidParameterException"
    bad_policy = json.dumps(
        {"http": {"defaultHealthyRetryPolicy": {"minDelayTarget": 5, "maxDelayTarget": 1}}}
    )
    assert code_and_message(check_attribute, "DeliveryPolicy", bad_policy)[0] == (
        "InvalidParameterException"
    )


def test_effective_delivery_policy_merges_the_topics_over_defaults():
    policy = json.dumps({"http": {"defaultHealthyRetryPolicy": {"numRetries": 7}}})
    retry = effective_delivery_policy(policy)["http"]["defaultHealthyRetryPolicy"]
    assert retry["numRetries"] == 7 and retry["minDelayTarget"] == 20
    assert effective_delivery_policy(None)["http"]["defaultHealthyRetryPolicy"]["numRetries"] == 3


# --- endpoints -------------------------------------------------------------------------


def test_endpoint_shapes():
    good = [
        ("http", "http://h/x"),
        ("https", "https://h"),
        ("email", "a@b.c"),
        ("sms", "+15555550100"),
        ("sqs", "arn:aws:sqs:us-east-1:000000000000:q"),
        ("lambda", "arn:aws:lambda:us-east-1:000000000000:function:f"),
    ]
    for protocol, endpoint in good:
        assert check_endpoint(protocol, endpoint) == endpoint
    for protocol, endpoint in [
        ("http", "https://h"),
        ("email", "nobody"),
        ("sqs", "q"),
        ("ftp", "ftp://h"),
        ("sms", "call me"),
    ]:
        with pytest.raises(AwsError):
            check_endpoint(protocol, endpoint)


# --- the retry schedule ----------------------------------------------------------------


def test_aws_default_http_policy_is_three_retries_twenty_seconds_apart():
    policy = {"minDelayTarget": 20, "maxDelayTarget": 20, "numRetries": 3}
    assert [retry_delay_s(policy, n) for n in (1, 2, 3)] == [20, 20, 20]
    assert retry_delay_s(policy, 4) == math.inf


def test_phases_of_the_schedule():
    policy = {
        "minDelayTarget": 2,
        "maxDelayTarget": 10,
        "numRetries": 8,
        "numNoDelayRetries": 1,
        "numMinDelayRetries": 2,
        "numMaxDelayRetries": 2,
        "backoffFunction": "linear",
    }
    assert [retry_delay_s(policy, n) for n in range(1, 9)] == [0, 2, 2, 2, 6, 10, 10, 10]


@given(
    low=st.integers(0, 60),
    extra=st.integers(0, 600),
    retries=st.integers(0, 30),
    none=st.integers(0, 5),
    at_min=st.integers(0, 5),
    at_max=st.integers(0, 5),
    function=st.sampled_from(["linear", "arithmetic", "geometric", "exponential"]),
)
def test_schedule_rises_within_bounds_and_ends(low, extra, retries, none, at_min, at_max, function):
    high = low + extra
    policy = {
        "minDelayTarget": low,
        "maxDelayTarget": high,
        "numRetries": retries,
        "numNoDelayRetries": none,
        "numMinDelayRetries": at_min,
        "numMaxDelayRetries": at_max,
        "backoffFunction": function,
    }
    delays = [retry_delay_s(policy, n) for n in range(1, retries + 1)]
    assert all(0 <= d <= high + 1e-9 for d in delays)
    assert all(a <= b + 1e-9 for a, b in itertools.pairwise(delays))
    assert retry_delay_s(policy, retries + 1) == math.inf


@given(
    low=st.floats(0.5, 100),
    span=st.floats(0, 1000),
    steps=st.integers(2, 40),
    function=st.sampled_from(["linear", "arithmetic", "geometric", "exponential"]),
)
def test_backoff_goes_from_min_to_max(low, span, steps, function):
    high = low + span
    assert backoff_delay(function, low, high, 1, steps) == pytest.approx(low)
    assert backoff_delay(function, low, high, steps, steps) == pytest.approx(high)
