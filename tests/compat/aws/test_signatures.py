"""With ``aws_credentials`` set, SigV4 signatures are verified: boto3 with the
right secret works, a wrong secret or an unknown key is refused with AWS's
codes, for SQS (JSON) and SNS/STS (query) alike."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from dovecote.testing import BrokerThread
from tests.compat.aws.conftest import ONLY_AWS


@pytest.fixture(scope="module")
def signed_broker(tmp_path_factory) -> Iterator[BrokerThread]:
    with BrokerThread(
        tmp_path_factory.mktemp("aws-signed") / "data",
        aws_credentials="AKIDGOOD:good-secret,AKIDOTHER:other-secret",
        **ONLY_AWS,
    ) as running:
        yield running


def client(service: str, broker: BrokerThread, key: str, secret: str):
    return boto3.client(
        service,
        endpoint_url=broker.aws_endpoint,
        region_name="eu-west-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def test_the_right_secret_is_accepted_and_its_region_is_used(signed_broker):
    sqs = client("sqs", signed_broker, "AKIDGOOD", "good-secret")
    url = sqs.create_queue(QueueName="signed")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    assert arn["QueueArn"] == "arn:aws:sqs:eu-west-1:000000000000:signed"
    identity = client("sts", signed_broker, "AKIDOTHER", "other-secret").get_caller_identity()
    assert identity["UserId"] == "AKIDOTHER"


@pytest.mark.parametrize("service", ["sqs", "sts"])
@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [
        ("AKIDGOOD", "wrong", "SignatureDoesNotMatch"),
        ("AKIDUNKNOWN", "good-secret", "InvalidClientTokenId"),
    ],
)
def test_bad_signatures_are_refused(signed_broker, service, key, secret, code):
    bad = client(service, signed_broker, key, secret)
    with pytest.raises(ClientError) as info:
        if service == "sqs":
            bad.list_queues()
        else:
            bad.get_caller_identity()
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
