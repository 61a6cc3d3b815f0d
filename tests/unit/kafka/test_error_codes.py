"""error_codes: kio's enum under Kafka's own names, nothing duplicated."""

from __future__ import annotations

from dovecote.kafka.codec import ErrorCode, error_codes


def test_every_kio_code_has_an_upper_case_alias_that_is_the_member():
    for member in ErrorCode:
        assert getattr(error_codes, member.name.upper()) is member


def test_the_codes_the_broker_uses_have_kafkas_numbers():
    expected = {
        "NONE": 0,
        "UNKNOWN_SERVER_ERROR": -1,
        "OFFSET_OUT_OF_RANGE": 1,
        "CORRUPT_MESSAGE": 2,
        "UNKNOWN_TOPIC_OR_PARTITION": 3,
        "NOT_LEADER_OR_FOLLOWER": 6,
        "REQUEST_TIMED_OUT": 7,
        "MESSAGE_TOO_LARGE": 10,
        "COORDINATOR_LOAD_IN_PROGRESS": 14,
        "COORDINATOR_NOT_AVAILABLE": 15,
        "NOT_COORDINATOR": 16,
        "INVALID_TOPIC_EXCEPTION": 17,
        "RECORD_LIST_TOO_LARGE": 18,
        "NOT_ENOUGH_REPLICAS": 19,
        "INVALID_REQUIRED_ACKS": 21,
        "ILLEGAL_GENERATION": 22,
        "INVALID_GROUP_ID": 24,
        "UNKNOWN_MEMBER_ID": 25,
        "INVALID_SESSION_TIMEOUT": 26,
        "REBALANCE_IN_PROGRESS": 27,
        "UNSUPPORTED_VERSION": 35,
        "TOPIC_ALREADY_EXISTS": 36,
        "INVALID_PARTITIONS": 37,
        "INVALID_REPLICATION_FACTOR": 38,
        "INVALID_CONFIG": 40,
        "INVALID_REQUEST": 42,
        "UNSUPPORTED_FOR_MESSAGE_FORMAT": 43,
        "POLICY_VIOLATION": 44,
        "OUT_OF_ORDER_SEQUENCE_NUMBER": 45,
        "DUPLICATE_SEQUENCE_NUMBER": 46,
        "INVALID_PRODUCER_EPOCH": 47,
        "KAFKA_STORAGE_ERROR": 56,
        "UNKNOWN_PRODUCER_ID": 59,
        "NON_EMPTY_GROUP": 68,
        "GROUP_ID_NOT_FOUND": 69,
        "MEMBER_ID_REQUIRED": 79,
        "FENCED_INSTANCE_ID": 82,
        "UNKNOWN_TOPIC_ID": 100,
    }
    assert {name: int(getattr(error_codes, name)) for name in expected} == expected


def test_aliases_behave_as_ints_and_know_retriability():
    assert error_codes.NOT_COORDINATOR == 16
    assert error_codes.NOT_COORDINATOR.retriable
    assert not error_codes.INVALID_CONFIG.retriable
