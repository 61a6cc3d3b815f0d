"""Header versions and version ranges come from kio's schema classes."""

from __future__ import annotations

import kio.schema.request_header.v1
import kio.schema.request_header.v2
import kio.schema.response_header.v0
import kio.schema.response_header.v1
import pytest
from kio.schema.index import api_key_map, schema_name_map

from dovecote.kafka.codec import (
    API_VERSIONS,
    KIO_VERSIONS,
    api_name,
    is_flexible,
    negotiate,
    request_class,
    request_header_version,
    response_class,
    response_header_version,
)
from tests.unit.kafka.apis import ALL_VERSIONS

REQUEST_HEADERS = {
    kio.schema.request_header.v1.RequestHeader: 1,
    kio.schema.request_header.v2.RequestHeader: 2,
}
RESPONSE_HEADERS = {
    kio.schema.response_header.v0.ResponseHeader: 0,
    kio.schema.response_header.v1.ResponseHeader: 1,
}


def test_kio_versions_cover_the_whole_schema_index():
    assert set(KIO_VERSIONS) == set(api_key_map)
    for key, (low, high) in KIO_VERSIONS.items():
        assert set(schema_name_map[api_key_map[key]]) == set(range(low, high + 1))


@pytest.mark.parametrize(("name", "key", "version"), ALL_VERSIONS)
def test_header_versions_derived_from_flexible_agree_with_kio(name, key, version):
    request = request_class(key, version)
    response = response_class(key, version)
    assert is_flexible(key, version) == request.__flexible__ == response.__flexible__
    assert request_header_version(key, version) == REQUEST_HEADERS[request.__header_schema__]
    assert response_header_version(key, version) == RESPONSE_HEADERS[response.__header_schema__]


def test_api_versions_quirk_flexible_body_but_response_header_v0():
    assert is_flexible(API_VERSIONS, 3)
    assert request_header_version(API_VERSIONS, 3) == 2
    assert response_header_version(API_VERSIONS, 3) == 0
    assert response_header_version(3, 9) == 1  # Metadata v9 is flexible: header v1


def test_kio_baselines_match_kafka_4():
    assert KIO_VERSIONS[0][0] == 3  # Produce v0-v2 were removed in Kafka 4.0
    assert KIO_VERSIONS[1][0] == 4  # Fetch v0-v3 too
    assert KIO_VERSIONS[2][0] == 1  # ListOffsets v0
    assert api_name(0) == "produce" and api_name(9999) is None


def test_negotiate_intersects_with_kio_and_drops_empty_ranges():
    assert negotiate({0: (0, 99), 1: (5, 6), 18: (5, 9), 9999: (0, 1)}) == {0: (3, 13), 1: (5, 6)}


def test_unknown_versions_are_key_errors():
    with pytest.raises(KeyError):
        request_class(0, 2)
    with pytest.raises(KeyError):
        response_class(9999, 0)
