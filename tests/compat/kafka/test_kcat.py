"""kcat (librdkafka's command-line client) produces, consumes and lists."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .clients import CODECS

KCAT = shutil.which("kcat")
pytestmark = pytest.mark.skipif(
    KCAT is None, reason="kcat is installed by scripts/install-test-deps.sh"
)


def kcat(broker, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [KCAT, "-b", broker.kafka_bootstrap, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("codec", CODECS)
def test_produce_and_consume_with_keys_and_headers(broker, topic_name, codec):
    lines = "".join(f"k{i % 5}:v{i}\n" for i in range(5000))
    kcat(broker, "-P", "-t", topic_name, "-K", ":", "-z", codec, "-H", "source=kcat", stdin=lines)
    out = kcat(broker, "-C", "-t", topic_name, "-e", "-q", "-f", "%k|%s|%h\\n")
    got = out.splitlines()
    assert len(got) == 5000
    assert sorted(got) == sorted(f"k{i % 5}|v{i}|source=kcat" for i in range(5000))


def test_metadata_and_offsets_query(broker, topic_name):
    kcat(broker, "-P", "-t", topic_name, stdin="a\nb\nc\n")
    listing = kcat(broker, "-L", "-t", topic_name)
    assert f'topic "{topic_name}" with 1 partitions' in listing
    assert "leader 0" in listing
    offsets = kcat(broker, "-Q", "-t", f"{topic_name}:0:0")
    assert f"{topic_name} [0] offset 0" in offsets
    tail = kcat(broker, "-C", "-t", topic_name, "-o", "-1", "-e", "-q")
    assert tail.splitlines() == ["c"]
