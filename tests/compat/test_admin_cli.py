"""The dovecote CLI against a broker process, over its HTTP admin API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from dovecote.testing import BrokerProcess
from tests.compat.aws.conftest import client as aws_client


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    data = tmp_path_factory.mktemp("cli") / "data"
    with BrokerProcess(data, listeners={"kafka": "off", "amqp": "off"}) as proc:
        yield proc


def cli(broker, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOVECOTE_ADMIN_URL=f"http://{broker.addresses['http']}", COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "dovecote", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_topics_produce_consume_groups(broker):
    ok(
        cli(
            broker,
            "topics",
            "create",
            "cli-orders",
            "--partitions",
            "2",
            "--config",
            "retention.ms=60000",
        )
    )
    assert "already exists" in cli(broker, "topics", "create", "cli-orders").stderr
    assert "cli-orders" in ok(cli(broker, "topics", "list"))
    lines = "".join(f"key{i % 5}\tvalue {i}\n" for i in range(300))
    produced = cli(broker, "produce", "cli-orders", "--key-separator", "\t", stdin=lines)
    assert produced.returncode == 0 and "produced 300 records" in produced.stderr
    out = ok(cli(broker, "consume", "cli-orders", "--from-beginning", "--print-key"))
    got = sorted(out.splitlines())
    assert len(got) == 300 and "key1\tvalue 1" in got
    described = ok(cli(broker, "topics", "describe", "cli-orders"))
    assert "retention.ms" in described and "60000" in described
    # A group remembers where it got to.
    assert (
        len(
            ok(
                cli(broker, "consume", "cli-orders", "--group", "cli-g", "--from-beginning")
            ).splitlines()
        )
        == 300
    )
    ok(cli(broker, "produce", "cli-orders", stdin="late\n"))
    assert ok(cli(broker, "consume", "cli-orders", "--group", "cli-g")).splitlines() == ["late"]
    assert "cli-g" in ok(cli(broker, "groups", "list"))
    assert "cli-orders" in ok(cli(broker, "groups", "describe", "cli-g"))
    plan = ok(
        cli(broker, "groups", "reset-offsets", "cli-g", "--topic", "cli-orders", "--to-earliest")
    )
    assert "dry run" in plan
    ok(
        cli(
            broker,
            "groups",
            "reset-offsets",
            "cli-g",
            "--topic",
            "cli-orders",
            "--to-earliest",
            "--execute",
        )
    )
    assert len(ok(cli(broker, "consume", "cli-orders", "--group", "cli-g")).splitlines()) == 301
    ok(
        cli(
            broker,
            "topics",
            "alter",
            "cli-orders",
            "--partitions",
            "4",
            "--config",
            "retention.ms=1000",
        )
    )
    assert "1000" in ok(cli(broker, "topics", "describe", "cli-orders"))
    ok(cli(broker, "topics", "delete", "cli-orders"))
    assert "cli-orders" not in ok(cli(broker, "topics", "list"))
    missing = cli(broker, "topics", "describe", "cli-orders")
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr


def test_consume_by_timestamp_and_offset(broker):
    ok(cli(broker, "topics", "create", "cli-ts"))
    ok(cli(broker, "produce", "cli-ts", stdin="a\nb\nc\n"))
    assert ok(cli(broker, "consume", "cli-ts", "--offset", "1")).splitlines() == ["b", "c"]
    assert ok(cli(broker, "consume", "cli-ts", "--timestamp", "0")).splitlines() == ["a", "b", "c"]
    assert ok(
        cli(broker, "consume", "cli-ts", "--from-beginning", "--max-messages", "2")
    ).splitlines() == ["a", "b"]


def test_admin_api_errors_and_metrics(broker):
    base = f"http://{broker.addresses['http']}"

    def call(method: str, path: str, body: object = None) -> tuple[int, dict | str]:
        req = urllib.request.Request(
            base + path, data=None if body is None else json.dumps(body).encode(), method=method
        )
        try:
            with urllib.request.urlopen(req) as response:
                raw = response.read().decode()
                return response.status, json.loads(raw) if raw.startswith(("{", "[")) else raw
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    assert call("GET", "/v1/topics/missing")[0] == 404
    assert call("POST", "/v1/topics", {"name": "bad", "configs": {"nope": "1"}})[0] == 400
    assert call("POST", "/v1/topics", {"name": "bad", "partitions": 0})[0] == 400
    assert call("POST", "/v1/topics", "not an object")[0] == 400
    status, spec = call("GET", "/v1/openapi.json")
    assert status == 200 and "/v1/topics" in spec["paths"]
    status, text = call("GET", "/metrics")
    assert status == 200 and "dovecote_partition_high_watermark" in text
    assert call("GET", "/v1/health") == (200, {"status": "ok"})


def test_sqs_queue_in_admin_api_and_queues_list(broker):
    """A queue created over SQS, with a RedrivePolicy, as the admin API and
    ``dovecote queues list`` show it: its kind, ready, in-flight and delayed
    counts (the same as SQS's own Approximate* attributes) and its DLQ depth."""
    sqs = aws_client("sqs", broker.aws_endpoint)
    dlq = sqs.create_queue(QueueName="cli-sqs-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    main = sqs.create_queue(QueueName="cli-sqs-main", Attributes={"RedrivePolicy": redrive})[
        "QueueUrl"
    ]
    # The delayed one first: the core counts a delay once a receive has
    # passed over it (SQS's own count also knows delayed sends not reached yet).
    sqs.send_message(QueueUrl=main, MessageBody="later", DelaySeconds=900)
    for i in range(3):
        sqs.send_message(QueueUrl=main, MessageBody=f"m{i}")
    got = sqs.receive_message(QueueUrl=main, VisibilityTimeout=600, WaitTimeSeconds=5)
    assert len(got["Messages"]) == 1
    sqs.send_message_batch(
        QueueUrl=dlq, Entries=[{"Id": str(i), "MessageBody": "dead"} for i in range(2)]
    )
    counted = sqs.get_queue_attributes(QueueUrl=main, AttributeNames=["All"])["Attributes"]
    assert counted["ApproximateNumberOfMessages"] == "2"
    assert counted["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert counted["ApproximateNumberOfMessagesDelayed"] == "1"

    with urllib.request.urlopen(f"http://{broker.addresses['http']}/v1/queues") as response:
        queues = {q["name"]: q for q in json.loads(response.read())}
    view = queues["cli-sqs-main"]
    assert view["declared_by"] == "sqs"
    assert view["messages_ready"] == 2
    assert view["messages_unacked"] == 1
    assert view["messages_delayed"] == 1
    assert view["dead_letter_depth"] == 2
    policy = json.loads(view["arguments"]["sqs"]["attributes"]["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == dlq_arn
    assert queues["cli-sqs-dlq"]["messages_ready"] == 2
    with urllib.request.urlopen(f"http://{broker.addresses['http']}/v1/openapi.json") as response:
        spec = json.loads(response.read())
    schema = spec["paths"]["/v1/queues/{queue}"]["get"]["responses"]["200"]["content"]
    assert set(schema["application/json"]["schema"]["properties"]) == set(view)  # all documented
    assert queues["cli-sqs-dlq"]["dead_letter_depth"] is None

    rows = {}
    for line in ok(cli(broker, "queues", "list")).splitlines():
        cells = [c.strip() for c in line.strip()[1:-1].split("│")]
        if cells and cells[0].startswith("cli-sqs-"):
            rows[cells[0]] = cells
    # queue, kind, ready, in flight, delayed, consumers, DLQ depth, durable, arguments
    assert rows["cli-sqs-main"][:8] == ["cli-sqs-main", "sqs", "2", "1", "1", "0", "2", "yes"]
    assert rows["cli-sqs-dlq"][:8] == ["cli-sqs-dlq", "sqs", "2", "0", "0", "0", "-", "yes"]
    assert rows["cli-sqs-main"][8] == ""  # SQS attributes are left to `aws sqs`
