"""Malformed input against the HTTP admin listener (aiohttp): broken request
lines, oversized and invalid headers, lying Content-Length and chunked
bodies, stalled requests, garbage; and well-formed requests with random
paths, queries and JSON bodies on every route. The broker never dies, no
request gets a 5xx (a bad request is the client's fault: 4xx), resident
memory stays within RSS_BOUND_MIB, and both a Kafka client and an HTTP
client keep working meanwhile."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import urllib.parse
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.fuzzing import SteadyClient, Watch, blast
from tests.faults.harness import SCALE, Broker, scaled, seeded

RSS_BOUND_MIB = 128  # as for the Kafka listener (see test_kafka_fuzz.py)
SECONDS = 10 * SCALE
ROUTES = [
    ("GET", "/v1/health"),
    ("GET", "/v1/cluster"),
    ("GET", "/metrics"),
    ("GET", "/v1/topics"),
    ("POST", "/v1/topics"),
    ("GET", "/v1/topics/{}"),
    ("DELETE", "/v1/topics/{}"),
    ("PATCH", "/v1/topics/{}/configs"),
    ("POST", "/v1/topics/{}/partitions"),
    ("POST", "/v1/topics/{}/records"),
    ("GET", "/v1/topics/{}/partitions/{}/records"),
    ("GET", "/v1/topics/{}/offsets"),
    ("GET", "/v1/groups"),
    ("GET", "/v1/groups/{}"),
    ("DELETE", "/v1/groups/{}"),
    ("POST", "/v1/groups/{}/offsets"),
    ("POST", "/v1/groups/{}/reset-offsets"),
    ("GET", "/v1/queues"),
    ("GET", "/v1/queues/{}"),
    ("POST", "/v1/queues/{}/purge"),
    ("GET", "/v1/exchanges"),
    ("GET", "/v1/bindings"),
]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("http-fuzz") / "data").start()
    yield broker
    broker.stop()


class HealthPoller:
    """A well-behaved HTTP client: GET /v1/health every 50 ms; each must
    answer 200 within 5 s."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.rounds = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-poller", daemon=True)

    def _run(self) -> None:
        host, port = self.address.rsplit(":", 1)
        while not self._stop.wait(0.05):
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
                conn.request("GET", "/v1/health")
                status = conn.getresponse().status
                conn.close()
                if status != 200:
                    self.failures.append(f"status {status}")
            except OSError as err:
                self.failures.append(repr(err))
            self.rounds += 1

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


# --- raw garbage --------------------------------------------------------------------------

METHODS = [
    b"GET",
    b"POST",
    b"PUT",
    b"PATCH",
    b"DELETE",
    b"HEAD",
    b"OPTIONS",
    b"BREW",
    b"G\x00T",
    b"",
]


def raw_request(rng: random.Random) -> bytes:
    """One malformed HTTP/1.1 request (or plain garbage)."""
    kind = rng.randrange(9)
    method = rng.choice(METHODS)
    path = rng.choice([b"/v1/topics", b"/metrics", b"/", b"*", b"/v1/topics/" + rng.randbytes(8)])
    if kind == 0:
        return rng.randbytes(rng.randint(1, 2000))
    if kind == 1:  # a path far beyond any line limit
        return method + b" /" + b"a" * rng.choice([9000, 70000]) + b" HTTP/1.1\r\n\r\n"
    if kind == 2:  # a header far beyond the limit, or very many headers
        if rng.random() < 0.5:
            return b"GET / HTTP/1.1\r\nX: " + b"v" * 20000 + b"\r\n\r\n"
        return b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(500)) + b"\r\n"
    if kind == 3:  # Content-Length lies (too long: the broker waits; negative; twice)
        length = rng.choice([b"100000000", b"-1", b"abc", b"5\r\nContent-Length: 7"])
        return method + b" " + path + b" HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\n{}"
    if kind == 4:  # broken chunked bodies
        chunks = rng.choice([b"zz\r\n", b"ffffffffffff\r\nxx", b"5\r\nab\r\n0\r\n\r\n", b"1\r\n"])
        return b"POST /v1/topics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    if kind == 5:  # invalid characters in the request line and headers
        return method + b" " + path + rng.randbytes(4) + b" HTTP/1.1\r\nH\x01st: \xff\r\n\r\n"
    if kind == 6:  # unknown versions and HTTP/0.9
        return method + b" " + path + rng.choice([b" HTTP/9.9", b"", b" HTTP/1"]) + b"\r\n\r\n"
    if kind == 7:  # a stalled request: headers never finish
        return b"POST /v1/topics HTTP/1.1\r\nHost: x\r\nContent-"
    body = rng.randbytes(rng.randint(0, 200))  # garbage JSON on a real route
    return (
        b"POST /v1/topics HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % len(body)
        + body
    )


def test_malformed_http_never_hurts_the_broker(broker, fault_report):
    seed, rng = seeded()

    def batches():
        while True:
            yield [raw_request(rng) for _ in range(rng.randint(1, 3))]

    with (
        SteadyClient(broker.kafka_bootstrap, f"steady-{uuid.uuid4().hex[:8]}") as steady,
        HealthPoller(broker.addresses["http"]) as health,
        Watch(broker) as watch,
    ):
        sent = blast(
            broker.addresses["http"], batches(), SECONDS, concurrency=16, alive=broker.check
        )
    alive = broker.settle()
    errors = server_errors(broker)
    fault_report(
        "malformed HTTP (admin)",
        runs=sent.frames,
        acknowledged=steady.rounds + health.rounds,
        lost=len(steady.failures) + len(health.failures),
        crashes=broker.crashes,
        server_errors=len(errors),
        rss_growth_mib=round(watch.growth_mib, 1),
        seed=seed,
    )
    assert alive, broker.crash_logs[-1]
    assert not errors, errors[:5]
    assert not steady.failures and not health.failures, (steady.failures[:3], health.failures[:3])
    assert watch.growth_mib < RSS_BOUND_MIB, f"RSS grew by {watch.growth_mib:.0f} MiB"


def server_errors(broker: Broker) -> list[str]:
    """Unhandled errors the broker logged (aiohttp logs every 5xx it makes)."""
    lines = broker.log_path.read_text(errors="replace").splitlines()
    return [line for line in lines if "Error handling request" in line or "Traceback" in line]


# --- well-formed requests, random content ----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "name",
        "partitions",
        "configs",
        "set",
        "delete",
        "count",
        "records",
        "key",
        "value",
        "headers",
        "partition",
        "encoding",
        "offsets",
        "topic",
        "offset",
        "to",
        "execute",
    ]
)
json_bodies = st.one_of(
    json_values,
    st.dictionaries(field_names, json_values, max_size=5),
    st.dictionaries(
        field_names,
        st.lists(st.dictionaries(field_names, json_values, max_size=4), max_size=3),
        max_size=3,
    ),
)
segments = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["0", "-1", "99999999999999999999", "%", "..", "__consumer_offsets"]),
)
queries = st.dictionaries(
    st.sampled_from(["offset", "max_bytes", "max_records", "timeout_ms", "timestamp", "internal"]),
    st.one_of(st.integers(-(2**70), 2**70).map(str), st.text(max_size=10)),
    max_size=3,
)


@settings(
    max_examples=scaled(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(ROUTES),
    params=st.lists(segments, min_size=2, max_size=2),
    query=queries,
    body=json_bodies,
)
def test_random_json_on_every_route_gets_no_server_error(broker, route, params, query, body):
    method, template = route
    path = template.format(*(urllib.parse.quote(p, safe="") for p in params))
    if query:
        path += "?" + urllib.parse.urlencode(query)
    if "timeout_ms" in query:
        path += "&timeout_ms=0"  # the last value wins: no long polls in a fuzz loop
    host, port = broker.addresses["http"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        data = json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = response.read()[:300]
    finally:
        conn.close()
    assert broker.check(), broker.crash_logs[-1]
    assert response.status < 500, f"{method} {path} {data[:200]!r} -> {response.status} {answer!r}"


def test_http_fuzz_left_no_server_errors_in_the_log(broker):
    time.sleep(0.2)
    assert broker.settle(), broker.crash_logs[-1]
    assert not server_errors(broker), server_errors(broker)[:5]
