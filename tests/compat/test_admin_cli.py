"""The dovecote CLI against a broker process, over its HTTP admin API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from dovecote.testing import BrokerProcess


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
