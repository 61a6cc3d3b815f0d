"""Kafka error codes as named ints: kio's :class:`ErrorCode` enum, re-exported.

kio's ``ErrorCode`` is already the complete ``IntEnum`` of the protocol guide
(with a ``retriable`` flag per code), so this module does not duplicate the
table: it re-exports the enum and adds the upper-case names Kafka's own docs use
(``NOT_COORDINATOR``, ...) as aliases of its members. Use the members, not bare
ints, in kio entities: kio writes ``error_code.value``.

    >>> NOT_COORDINATOR == 16, NOT_COORDINATOR is ErrorCode.not_coordinator
    (True, True)
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode

UNKNOWN_SERVER_ERROR = ErrorCode.unknown_server_error  # -1
NONE = ErrorCode.none  # 0
OFFSET_OUT_OF_RANGE = ErrorCode.offset_out_of_range  # 1
CORRUPT_MESSAGE = ErrorCode.corrupt_message  # 2
UNKNOWN_TOPIC_OR_PARTITION = ErrorCode.unknown_topic_or_partition  # 3
INVALID_FETCH_SIZE = ErrorCode.invalid_fetch_size  # 4
LEADER_NOT_AVAILABLE = ErrorCode.leader_not_available  # 5
NOT_LEADER_OR_FOLLOWER = ErrorCode.not_leader_or_follower  # 6
REQUEST_TIMED_OUT = ErrorCode.request_timed_out  # 7
BROKER_NOT_AVAILABLE = ErrorCode.broker_not_available  # 8
REPLICA_NOT_AVAILABLE = ErrorCode.replica_not_available  # 9
MESSAGE_TOO_LARGE = ErrorCode.message_too_large  # 10
STALE_CONTROLLER_EPOCH = ErrorCode.stale_controller_epoch  # 11
OFFSET_METADATA_TOO_LARGE = ErrorCode.offset_metadata_too_large  # 12
NETWORK_EXCEPTION = ErrorCode.network_exception  # 13
COORDINATOR_LOAD_IN_PROGRESS = ErrorCode.coordinator_load_in_progress  # 14
COORDINATOR_NOT_AVAILABLE = ErrorCode.coordinator_not_available  # 15
NOT_COORDINATOR = ErrorCode.not_coordinator  # 16
INVALID_TOPIC_EXCEPTION = ErrorCode.invalid_topic_exception  # 17
RECORD_LIST_TOO_LARGE = ErrorCode.record_list_too_large  # 18
NOT_ENOUGH_REPLICAS = ErrorCode.not_enough_replicas  # 19
NOT_ENOUGH_REPLICAS_AFTER_APPEND = ErrorCode.not_enough_replicas_after_append  # 20
INVALID_REQUIRED_ACKS = ErrorCode.invalid_required_acks  # 21
ILLEGAL_GENERATION = ErrorCode.illegal_generation  # 22
INCONSISTENT_GROUP_PROTOCOL = ErrorCode.inconsistent_group_protocol  # 23
INVALID_GROUP_ID = ErrorCode.invalid_group_id  # 24
UNKNOWN_MEMBER_ID = ErrorCode.unknown_member_id  # 25
INVALID_SESSION_TIMEOUT = ErrorCode.invalid_session_timeout  # 26
REBALANCE_IN_PROGRESS = ErrorCode.rebalance_in_progress  # 27
INVALID_COMMIT_OFFSET_SIZE = ErrorCode.invalid_commit_offset_size  # 28
TOPIC_AUTHORIZATION_FAILED = ErrorCode.topic_authorization_failed  # 29
GROUP_AUTHORIZATION_FAILED = ErrorCode.group_authorization_failed  # 30
CLUSTER_AUTHORIZATION_FAILED = ErrorCode.cluster_authorization_failed  # 31
INVALID_TIMESTAMP = ErrorCode.invalid_timestamp  # 32
UNSUPPORTED_SASL_MECHANISM = ErrorCode.unsupported_sasl_mechanism  # 33
ILLEGAL_SASL_STATE = ErrorCode.illegal_sasl_state  # 34
UNSUPPORTED_VERSION = ErrorCode.unsupported_version  # 35
TOPIC_ALREADY_EXISTS = ErrorCode.topic_already_exists  # 36
INVALID_PARTITIONS = ErrorCode.invalid_partitions  # 37
INVALID_REPLICATION_FACTOR = ErrorCode.invalid_replication_factor  # 38
INVALID_REPLICA_ASSIGNMENT = ErrorCode.invalid_replica_assignment  # 39
INVALID_CONFIG = ErrorCode.invalid_config  # 40
NOT_CONTROLLER = ErrorCode.not_controller  # 41
INVALID_REQUEST = ErrorCode.invalid_request  # 42
UNSUPPORTED_FOR_MESSAGE_FORMAT = ErrorCode.unsupported_for_message_format  # 43
POLICY_VIOLATION = ErrorCode.policy_violation  # 44
OUT_OF_ORDER_SEQUENCE_NUMBER = ErrorCode.out_of_order_sequence_number  # 45
DUPLICATE_SEQUENCE_NUMBER = ErrorCode.duplicate_sequence_number  # 46
INVALID_PRODUCER_EPOCH = ErrorCode.invalid_producer_epoch  # 47
INVALID_TXN_STATE = ErrorCode.invalid_txn_state  # 48
INVALID_PRODUCER_ID_MAPPING = ErrorCode.invalid_producer_id_mapping  # 49
INVALID_TRANSACTION_TIMEOUT = ErrorCode.invalid_transaction_timeout  # 50
CONCURRENT_TRANSACTIONS = ErrorCode.concurrent_transactions  # 51
TRANSACTION_COORDINATOR_FENCED = ErrorCode.transaction_coordinator_fenced  # 52
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = ErrorCode.transactional_id_authorization_failed  # 53
SECURITY_DISABLED = ErrorCode.security_disabled  # 54
OPERATION_NOT_ATTEMPTED = ErrorCode.operation_not_attempted  # 55
KAFKA_STORAGE_ERROR = ErrorCode.kafka_storage_error  # 56
LOG_DIR_NOT_FOUND = ErrorCode.log_dir_not_found  # 57
SASL_AUTHENTICATION_FAILED = ErrorCode.sasl_authentication_failed  # 58
UNKNOWN_PRODUCER_ID = ErrorCode.unknown_producer_id  # 59
REASSIGNMENT_IN_PROGRESS = ErrorCode.reassignment_in_progress  # 60
DELEGATION_TOKEN_AUTH_DISABLED = ErrorCode.delegation_token_auth_disabled  # 61
DELEGATION_TOKEN_NOT_FOUND = ErrorCode.delegation_token_not_found  # 62
DELEGATION_TOKEN_OWNER_MISMATCH = ErrorCode.delegation_token_owner_mismatch  # 63
DELEGATION_TOKEN_REQUEST_NOT_ALLOWED = ErrorCode.delegation_token_request_not_allowed  # 64
DELEGATION_TOKEN_AUTHORIZATION_FAILED = ErrorCode.delegation_token_authorization_failed  # 65
DELEGATION_TOKEN_EXPIRED = ErrorCode.delegation_token_expired  # 66
INVALID_PRINCIPAL_TYPE = ErrorCode.invalid_principal_type  # 67
NON_EMPTY_GROUP = ErrorCode.non_empty_group  # 68
GROUP_ID_NOT_FOUND = ErrorCode.group_id_not_found  # 69
FETCH_SESSION_ID_NOT_FOUND = ErrorCode.fetch_session_id_not_found  # 70
INVALID_FETCH_SESSION_EPOCH = ErrorCode.invalid_fetch_session_epoch  # 71
LISTENER_NOT_FOUND = ErrorCode.listener_not_found  # 72
TOPIC_DELETION_DISABLED = ErrorCode.topic_deletion_disabled  # 73
FENCED_LEADER_EPOCH = ErrorCode.fenced_leader_epoch  # 74
UNKNOWN_LEADER_EPOCH = ErrorCode.unknown_leader_epoch  # 75
UNSUPPORTED_COMPRESSION_TYPE = ErrorCode.unsupported_compression_type  # 76
STALE_BROKER_EPOCH = ErrorCode.stale_broker_epoch  # 77
OFFSET_NOT_AVAILABLE = ErrorCode.offset_not_available  # 78
MEMBER_ID_REQUIRED = ErrorCode.member_id_required  # 79
PREFERRED_LEADER_NOT_AVAILABLE = ErrorCode.preferred_leader_not_available  # 80
GROUP_MAX_SIZE_REACHED = ErrorCode.group_max_size_reached  # 81
FENCED_INSTANCE_ID = ErrorCode.fenced_instance_id  # 82
ELIGIBLE_LEADERS_NOT_AVAILABLE = ErrorCode.eligible_leaders_not_available  # 83
ELECTION_NOT_NEEDED = ErrorCode.election_not_needed  # 84
NO_REASSIGNMENT_IN_PROGRESS = ErrorCode.no_reassignment_in_progress  # 85
GROUP_SUBSCRIBED_TO_TOPIC = ErrorCode.group_subscribed_to_topic  # 86
INVALID_RECORD = ErrorCode.invalid_record  # 87
UNSTABLE_OFFSET_COMMIT = ErrorCode.unstable_offset_commit  # 88
THROTTLING_QUOTA_EXCEEDED = ErrorCode.throttling_quota_exceeded  # 89
PRODUCER_FENCED = ErrorCode.producer_fenced  # 90
RESOURCE_NOT_FOUND = ErrorCode.resource_not_found  # 91
DUPLICATE_RESOURCE = ErrorCode.duplicate_resource  # 92
UNACCEPTABLE_CREDENTIAL = ErrorCode.unacceptable_credential  # 93
INCONSISTENT_VOTER_SET = ErrorCode.inconsistent_voter_set  # 94
INVALID_UPDATE_VERSION = ErrorCode.invalid_update_version  # 95
FEATURE_UPDATE_FAILED = ErrorCode.feature_update_failed  # 96
PRINCIPAL_DESERIALIZATION_FAILURE = ErrorCode.principal_deserialization_failure  # 97
SNAPSHOT_NOT_FOUND = ErrorCode.snapshot_not_found  # 98
POSITION_OUT_OF_RANGE = ErrorCode.position_out_of_range  # 99
UNKNOWN_TOPIC_ID = ErrorCode.unknown_topic_id  # 100
DUPLICATE_BROKER_REGISTRATION = ErrorCode.duplicate_broker_registration  # 101
BROKER_ID_NOT_REGISTERED = ErrorCode.broker_id_not_registered  # 102
INCONSISTENT_TOPIC_ID = ErrorCode.inconsistent_topic_id  # 103
INCONSISTENT_CLUSTER_ID = ErrorCode.inconsistent_cluster_id  # 104
TRANSACTIONAL_ID_NOT_FOUND = ErrorCode.transactional_id_not_found  # 105
FETCH_SESSION_TOPIC_ID_ERROR = ErrorCode.fetch_session_topic_id_error  # 106
INELIGIBLE_REPLICA = ErrorCode.ineligible_replica  # 107
NEW_LEADER_ELECTED = ErrorCode.new_leader_elected  # 108
OFFSET_MOVED_TO_TIERED_STORAGE = ErrorCode.offset_moved_to_tiered_storage  # 109
FENCED_MEMBER_EPOCH = ErrorCode.fenced_member_epoch  # 110
UNRELEASED_INSTANCE_ID = ErrorCode.unreleased_instance_id  # 111
UNSUPPORTED_ASSIGNOR = ErrorCode.unsupported_assignor  # 112
STALE_MEMBER_EPOCH = ErrorCode.stale_member_epoch  # 113
MISMATCHED_ENDPOINT_TYPE = ErrorCode.mismatched_endpoint_type  # 114
UNSUPPORTED_ENDPOINT_TYPE = ErrorCode.unsupported_endpoint_type  # 115
UNKNOWN_CONTROLLER_ID = ErrorCode.unknown_controller_id  # 116
UNKNOWN_SUBSCRIPTION_ID = ErrorCode.unknown_subscription_id  # 117
TELEMETRY_TOO_LARGE = ErrorCode.telemetry_too_large  # 118
INVALID_REGISTRATION = ErrorCode.invalid_registration  # 119
TRANSACTION_ABORTABLE = ErrorCode.transaction_abortable  # 120
INVALID_RECORD_STATE = ErrorCode.invalid_record_state  # 121
SHARE_SESSION_NOT_FOUND = ErrorCode.share_session_not_found  # 122
INVALID_SHARE_SESSION_EPOCH = ErrorCode.invalid_share_session_epoch  # 123
FENCED_STATE_EPOCH = ErrorCode.fenced_state_epoch  # 124
INVALID_VOTER_KEY = ErrorCode.invalid_voter_key  # 125
DUPLICATE_VOTER = ErrorCode.duplicate_voter  # 126
VOTER_NOT_FOUND = ErrorCode.voter_not_found  # 127
INVALID_REGULAR_EXPRESSION = ErrorCode.invalid_regular_expression  # 128
REBOOTSTRAP_REQUIRED = ErrorCode.rebootstrap_required  # 129
STREAMS_INVALID_TOPOLOGY = ErrorCode.streams_invalid_topology  # 130
STREAMS_INVALID_TOPOLOGY_EPOCH = ErrorCode.streams_invalid_topology_epoch  # 131
STREAMS_TOPOLOGY_FENCED = ErrorCode.streams_topology_fenced  # 132
SHARE_SESSION_LIMIT_REACHED = ErrorCode.share_session_limit_reached  # 133
