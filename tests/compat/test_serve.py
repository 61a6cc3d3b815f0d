"""`dovecote serve` as users run it, the in-process Broker and the pytest fixture."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import boto3

from dovecote.server import Broker
from dovecote.testing import BrokerProcess


def test_serve_logs_listeners_and_stops_cleanly_on_sigterm(tmp_path):
    data = tmp_path / "data"
    proc = BrokerProcess(data, listeners={"kafka": "off", "amqp": "off"}).start()
    assert set(proc.addresses) >= {"http"}
    host, port = proc.addresses["http"].split(":")
    assert host == "127.0.0.1"
    assert proc.stop() == 0
    log = proc.log_path.read_text()
    assert f"http listening on 127.0.0.1:{port}" in log
    assert "stopped cleanly" in log
    assert (data / ".clean-shutdown").exists()


def test_serve_sigint_and_env_configuration(tmp_path):
    env = dict(os.environ, DOVECOTE_HTTP="127.0.0.1:0", DOVECOTE_KAFKA="off", DOVECOTE_AMQP="off")
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dovecote",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--ready-file",
            str(ready),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    addresses = json.loads(ready.read_text())
    assert "kafka" not in addresses and "amqp" not in addresses
    with urllib.request.urlopen(f"http://{addresses['http']}/v1/health") as response:
        assert json.loads(response.read()) == {"status": "ok"}
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


def test_serve_rejects_bad_settings(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dovecote",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--kafka",
            "nowhere:port",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "invalid listener address" in result.stderr


def test_in_process_broker_context_manager(tmp_path):
    async def main():
        async with Broker(data_dir=tmp_path, http="127.0.0.1:0", kafka="off", amqp="off") as broker:
            assert broker.addresses()["http"].startswith("127.0.0.1:")
            await broker.core.create_topic("embedded", 2)
        async with Broker(data_dir=tmp_path, http="off", kafka="off", amqp="off") as broker:
            assert len(broker.core.get_topic("embedded").partitions) == 2

    asyncio.run(main())


def test_pytest_fixture_gives_a_running_broker(dovecote_broker):
    http = dovecote_broker.addresses()["http"]
    body = json.dumps({"name": "from-fixture", "partitions": 1}).encode()
    request = urllib.request.Request(f"http://{http}/v1/topics", data=body, method="POST")
    with urllib.request.urlopen(request) as response:
        assert response.status == 201
    assert dovecote_broker.call(asyncio.sleep(0, "ok")) == "ok"
    assert dovecote_broker.broker.core.topic("from-fixture") is not None


def test_pytest_fixture_serves_sqs_to_boto3(dovecote_broker):
    """The README's example: boto3 against the fixture's SQS endpoint, any keys."""
    sqs = boto3.client(
        "sqs",
        endpoint_url=dovecote_broker.aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    assert url == f"{dovecote_broker.aws_endpoint}/000000000000/orders"
    sqs.send_message(QueueUrl=url, MessageBody="hi")
    (message,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    assert message["Body"] == "hi"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    assert counts == dict.fromkeys(names, "0")
