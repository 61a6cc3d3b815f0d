"""kombu (py-amqp, AMQPLAIN login) and a real Celery worker running tasks through Dovecote."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import kombu
import pytest

from tests.compat.amqp.conftest import subprocess_env


def test_kombu_simple_queue_and_producer_consumer(url, name):
    with kombu.Connection(url) as connection:
        queue = connection.SimpleQueue(name)
        for i in range(10):
            queue.put({"n": i}, serializer="json")
        got = []
        for _ in range(10):
            message = queue.get(timeout=5)
            got.append(message.payload["n"])
            message.ack()
        assert got == list(range(10))
        queue.clear()
        queue.close()

        exchange = kombu.Exchange(f"{name}.ex", "topic", durable=False, auto_delete=True)
        target = kombu.Queue(f"{name}.q", exchange, routing_key="jobs.#", auto_delete=True)
        received = []
        with connection.Consumer(
            target, callbacks=[lambda body, message: (received.append(body), message.ack())]
        ):
            producer = connection.Producer()
            for i in range(5):
                producer.publish(
                    {"job": i}, exchange=exchange, routing_key="jobs.x", declare=[target]
                )
            deadline = time.monotonic() + 5
            while len(received) < 5 and time.monotonic() < deadline:
                try:
                    connection.drain_events(timeout=0.2)
                except TimeoutError:
                    pass
        assert received == [{"job": i} for i in range(5)]


TASKS = """
    import os
    from celery import Celery

    app = Celery("dovetasks", broker=os.environ["BROKER_URL"], backend="rpc://")
    app.conf.update(
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        worker_prefetch_multiplier=4,
    )

    @app.task
    def add(x, y):
        return x + y

    @app.task(bind=True, max_retries=2, default_retry_delay=0.2)
    def flaky(self, key):
        marker = os.path.join(os.environ["MARKERS"], key)
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise self.retry()
        return "ok after retry"
"""


@pytest.fixture
def celery_app(tmp_path, url, monkeypatch):
    (tmp_path / "dovetasks.py").write_text(textwrap.dedent(TASKS))
    (tmp_path / "markers").mkdir()
    env = {**subprocess_env(), "BROKER_URL": url, "MARKERS": str(tmp_path / "markers")}
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "dovetasks",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for key in ("BROKER_URL", "MARKERS"):
        monkeypatch.setenv(key, env[key])
    sys.modules.pop("dovetasks", None)
    import dovetasks

    try:
        yield dovetasks
    finally:
        # Celery's own shutdown idles for seconds (with RabbitMQ too): just kill it.
        worker.kill()
        output, _ = worker.communicate()
        dovetasks.app.close()
        sys.modules.pop("dovetasks", None)
        print(output.decode(errors="replace")[-4000:])  # shown when the test fails


def test_celery_worker_runs_tasks(celery_app):
    results = [celery_app.add.delay(i, i) for i in range(25)]
    assert [r.get(timeout=30) for r in results] == [2 * i for i in range(25)]
    later = celery_app.add.apply_async((20, 22), countdown=0.5)  # an ETA task
    assert later.get(timeout=30) == 42
    assert celery_app.flaky.delay("k1").get(timeout=30) == "ok after retry"
