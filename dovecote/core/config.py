"""Broker settings and per-topic configs.

Topic configs use Kafka's names (``retention.ms``, ``segment.bytes``, ...) so
that Kafka admin tools can describe and alter them; a topic's value falls back
to the broker-wide default. ``flush.policy`` is Dovecote's own.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dovecote.core.errors import InvalidConfig
from dovecote.storage.log import LogConfig

DAY_MS = 24 * 3600 * 1000

FLUSH_ACK = "ack"  # an acknowledged append is fsynced first (group commit)
FLUSH_INTERVAL = "interval"  # fsync every flush.ms; acks do not wait
FLUSH_NEVER = "never"  # the OS writes back when it likes
FLUSH_POLICIES = (FLUSH_ACK, FLUSH_INTERVAL, FLUSH_NEVER)


LONG_MAX = (1 << 63) - 1
INT_MAX = (1 << 31) - 1


def _int(
    lo: int | None = None, hi: int | None = None, bits: int = 64, also: int | None = None
) -> Callable[[str], int]:
    """Kafka's INT (32 bits) or LONG (64 bits) with an optional range;
    ``also`` is one extra value allowed outside it (gzip's -1)."""
    top = (1 << (bits - 1)) - 1

    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except (TypeError, ValueError, AttributeError):
            raise InvalidConfig(f"{value!r} is not an integer") from None
        if not -top - 1 <= number <= top:
            raise InvalidConfig(f"{number} does not fit in {bits} bits")
        if number == also:
            return number
        if lo is not None and number < lo:
            raise InvalidConfig(f"{number} is below the minimum {lo}")
        if hi is not None and number > hi:
            raise InvalidConfig(f"{number} is above the maximum {hi}")
        return number

    return parse


def _double(lo: float, hi: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidConfig(f"{value!r} is not a number") from None
        if not lo <= number <= hi:
            raise InvalidConfig(f"{number} is not between {lo} and {hi}")
        return number

    return parse


def _bool(value: str) -> bool:
    """Kafka parses booleans case-insensitively."""
    if value.strip().lower() not in ("true", "false"):
        raise InvalidConfig(f"{value!r} is not a boolean (true, false)")
    return value.strip().lower() == "true"


def _text(value: str) -> str:
    return value


def _replica_list(value: str) -> str:
    """``*`` or ``partition:broker`` pairs, as the throttled-replica configs take."""
    text = value.strip()
    if text in ("", "*"):
        return text
    for item in text.split(","):
        part, _, broker = item.strip().partition(":")
        if not (part.isdigit() and broker.isdigit()):
            raise InvalidConfig(f"{value!r} is not '*' or a list of partition:broker")
    return text


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise InvalidConfig(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return parse


def _cleanup_policy(value: str) -> str:
    """``delete``, ``compact`` or both. An empty list is what an
    IncrementalAlterConfigs SUBTRACT of ``delete`` from ``delete`` leaves;
    Kafka 4.x accepts it and then neither compacts nor deletes by time or size
    (only remote storage, if enabled, trims the log: Kafka 4.2 topic config
    docs). Dovecote does not compact such a topic (compaction runs only when
    ``compact`` is listed), but its retention pass still applies
    ``retention.ms``/``retention.bytes`` as it does for every policy: set them
    to -1 for Kafka's unbounded log."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if any(p not in ("delete", "compact") for p in parts):
        raise InvalidConfig(f"{value!r} is not a valid cleanup.policy (delete, compact)")
    return ",".join(parts)


@dataclass(frozen=True, slots=True)
class TopicConfigDef:
    name: str
    parse: Callable[[str], Any]
    default: str
    doc: str
    # True: Dovecote acts on it; False: stored and described back only, so
    # Kafka clients that set it work.
    applied: bool = True


def _stored(name: str, parse: Callable[[str], Any], default: str, doc: str) -> TopicConfigDef:
    return TopicConfigDef(name, parse, default, doc, applied=False)


# Kafka 3.x/4.x topic configs Dovecote keeps and describes back without acting
# on them (no tiered storage, no replicas, no preallocation, no down-conversion).
# Types, ranges and defaults follow Kafka's LogConfig; deprecated ones are kept
# because clients still send them.
KAFKA_STORED_CONFIGS = [
    _stored("compression.gzip.level", _int(1, 9, bits=32, also=-1), "-1", "gzip level"),
    _stored("compression.lz4.level", _int(1, 17, bits=32), "9", "lz4 level"),
    _stored("compression.zstd.level", _int(-131072, 22, bits=32), "3", "zstd level"),
    _stored("file.delete.delay.ms", _int(0), "60000", "wait before deleting a file"),
    _stored("flush.messages", _int(1), str(LONG_MAX), "fsync every this many messages"),
    _stored("follower.replication.throttled.replicas", _replica_list, "", "throttled"),
    _stored("leader.replication.throttled.replicas", _replica_list, "", "throttled"),
    _stored("local.retention.bytes", _int(-2), "-2", "tiered storage: local bytes"),
    _stored("local.retention.ms", _int(-2), "-2", "tiered storage: local age"),
    _stored("max.compaction.lag.ms", _int(1), str(LONG_MAX), "compact records by this age"),
    _stored("message.downconversion.enable", _bool, "true", "removed in Kafka 4.0"),
    _stored("message.format.version", _text, "3.0-IV1", "deprecated; ignored"),
    _stored("message.timestamp.after.max.ms", _int(0), str(LONG_MAX), "future timestamp limit"),
    _stored("message.timestamp.before.max.ms", _int(0), str(LONG_MAX), "past timestamp limit"),
    _stored("message.timestamp.difference.max.ms", _int(0), str(LONG_MAX), "removed in Kafka 4.0"),
    _stored("min.cleanable.dirty.ratio", _double(0.0, 1.0), "0.5", "compaction trigger"),
    _stored("preallocate", _bool, "false", "preallocate segment files"),
    _stored("remote.log.copy.disable", _bool, "false", "tiered storage"),
    _stored("remote.log.delete.on.disable", _bool, "false", "tiered storage"),
    _stored("remote.storage.enable", _bool, "false", "tiered storage"),
    _stored("segment.index.bytes", _int(4, bits=32), "10485760", "offset index size"),
    _stored("segment.jitter.ms", _int(0), "0", "random segment roll jitter"),
]

TOPIC_CONFIGS: dict[str, TopicConfigDef] = {
    d.name: d
    for d in [
        TopicConfigDef("cleanup.policy", _cleanup_policy, "delete", "delete and/or compact"),
        TopicConfigDef(
            "retention.ms",
            _int(-1),
            str(7 * DAY_MS),
            "delete segments older than this; -1 keeps forever",
        ),
        TopicConfigDef(
            "retention.bytes",
            _int(-1),
            "-1",
            "delete oldest segments beyond this size per partition",
        ),
        TopicConfigDef("segment.bytes", _int(1024), str(1 << 30), "roll a segment at this size"),
        TopicConfigDef("segment.ms", _int(1), str(7 * DAY_MS), "roll a segment at this age"),
        TopicConfigDef(
            "max.message.bytes", _int(0, bits=32), "1048588", "largest record batch accepted"
        ),
        TopicConfigDef(
            "message.timestamp.type",
            _choice("CreateTime", "LogAppendTime"),
            "CreateTime",
            "keep the producer's timestamps or stamp the append time",
        ),
        TopicConfigDef(
            "index.interval.bytes", _int(0), "4096", "bytes between offset index entries"
        ),
        TopicConfigDef(
            "flush.policy",
            _choice(*FLUSH_POLICIES),
            FLUSH_ACK,
            "ack: fsync (group commit) before acknowledging; interval: every flush.ms; never: leave it to the OS",
        ),
        TopicConfigDef("flush.ms", _int(1), "1000", "fsync period for flush.policy=interval"),
        TopicConfigDef(
            "compression.type",
            _choice("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"),
            "producer",
            "batches are stored as produced whatever this says",
            applied=False,
        ),
        TopicConfigDef(
            "min.insync.replicas",
            _int(1),
            "1",
            "replicas that must have an append (single node: 1)",
            applied=False,
        ),
        TopicConfigDef(
            "delete.retention.ms",
            _int(0),
            str(DAY_MS),
            "how long compaction keeps tombstones",
        ),
        TopicConfigDef(
            "min.compaction.lag.ms",
            _int(0),
            "0",
            "records younger than this are not compacted",
        ),
        TopicConfigDef(
            "unclean.leader.election.enable",
            _bool,
            "false",
            "accepted for compatibility",
            applied=False,
        ),
        TopicConfigDef(
            "retention.acked",
            _choice("true", "false"),
            "false",
            "delete segments every subscription has settled (queues: disk use follows depth)",
        ),
        *KAFKA_STORED_CONFIGS,
    ]
}


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Check names and values; returns the configs with values as strings."""
    out: dict[str, str] = {}
    for name, value in configs.items():
        definition = TOPIC_CONFIGS.get(name)
        if definition is None:
            raise InvalidConfig(f"unknown topic config {name!r}")
        if value is None:
            raise InvalidConfig(f"config {name!r} needs a value")
        try:
            definition.parse(str(value))
        except InvalidConfig as err:
            raise InvalidConfig(f"invalid value for {name}: {err}") from None
        out[name] = str(value)
    return out


@dataclass
class BrokerConfig:
    """What the core is told: storage, flushing, budgets, groups, topic
    defaults. The listeners' own settings extend it in
    :class:`dovecote.settings.ServerConfig`, which is what ``dovecote serve``
    loads. CLI flags, ``DOVECOTE_*`` environment variables and a TOML file set
    it, in that order of precedence."""

    data_dir: Path = Path("data")
    node_id: int = 0
    auto_create_topics: bool = True
    num_partitions: int = 1
    message_max_bytes: int = 1048588
    retention_check_interval_ms: int = 300_000
    max_request_bytes: int = 100 * 1024 * 1024  # socket.request.max.bytes
    # A flush round with this many dirty logs on one file system syncs them
    # with one syncfs instead of one fdatasync each (0: never).
    flush_syncfs_min_logs: int = 8
    # Bytes of requests received and not yet answered, all connections and
    # protocols together (Kafka: queued.max.request.bytes). Connections stop
    # reading while it is used up; the total stays under this plus one request.
    max_inflight_bytes: int = 256 * 1024 * 1024
    # A connection whose request stops arriving midway for this long is
    # closed: it holds budget the others may need.
    request_stall_timeout_ms: int = 30_000
    # Bytes per second each Kafka client id may produce (0: no quota);
    # beyond it, responses carry throttle_time_ms and the connection is muted.
    produce_quota_bytes_per_sec: int = 0
    # Rates are measured over 11 windows of this (Kafka: quota.window.size.seconds).
    quota_window_ms: int = 1000
    fetch_max_bytes: int = 55 * 1024 * 1024  # Kafka's fetch.max.bytes: cap of one fetch response
    group_initial_rebalance_delay_ms: int = 300
    group_min_session_timeout_ms: int = 6_000
    group_max_session_timeout_ms: int = 1_800_000
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    # Resource alarms: publishers are blocked past these.
    disk_free_limit_bytes: int = 50_000_000  # free space on the data dir's file system
    memory_limit_bytes: int = 0  # resident set size; 0 = 40% of physical memory
    alarm_check_interval_ms: int = 1000
    topic_defaults: dict[str, str] = field(default_factory=dict)

    def topic_default(self, name: str) -> str:
        if name == "max.message.bytes" and name not in self.topic_defaults:
            return str(self.message_max_bytes)
        return self.topic_defaults.get(name, TOPIC_CONFIGS[name].default)

    def effective(self, topic_configs: Mapping[str, str], name: str) -> Any:
        """A topic config's parsed value, falling back to the broker default."""
        raw = topic_configs.get(name)
        if raw is None:
            raw = self.topic_default(name)
        return TOPIC_CONFIGS[name].parse(raw)

    def log_config(self, topic_configs: Mapping[str, str]) -> LogConfig:
        get = lambda name: self.effective(topic_configs, name)  # noqa: E731
        return LogConfig(
            segment_bytes=get("segment.bytes"),
            segment_ms=get("segment.ms"),
            retention_ms=get("retention.ms"),
            retention_bytes=get("retention.bytes"),
            index_interval_bytes=get("index.interval.bytes"),
            log_append_time=get("message.timestamp.type") == "LogAppendTime",
        )

    # --- loading ------------------------------------------------------------

    @classmethod
    def load(
        cls,
        file: Path | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> BrokerConfig:
        """Build a config from a TOML file, then ``DOVECOTE_*`` variables, then
        explicit overrides (CLI flags)."""
        config = cls()
        if file is not None:
            with open(file, "rb") as f:
                config._apply(tomllib.load(f), source=str(file))
        env = os.environ if env is None else env
        from_env: dict[str, Any] = config._from_environment(env)
        scalar_names = [
            f.name
            for f in fields(cls)
            if not isinstance(getattr(config, f.name), dict) and f.name not in from_env
        ]
        for name in scalar_names:
            value = env.get(f"DOVECOTE_{name.upper()}")
            if value is not None:
                from_env[name] = value
        config._apply(from_env, source="environment")
        if overrides:
            config._apply(dict(overrides), source="command line")
        return config

    def _from_environment(self, env: Mapping[str, str]) -> dict[str, Any]:
        """Settings read from the environment under names other than
        ``DOVECOTE_<FIELD>`` (a subclass adds its own)."""
        return {}

    def _apply_other(self, key: str, value: Any, source: str) -> bool:
        """Apply a setting that is not a plain field; False: unknown here."""
        return False

    def _apply(self, values: Mapping[str, Any], source: str) -> None:
        known = {f.name: f for f in fields(self)}
        for key, value in values.items():
            key = key.replace("-", "_")
            if self._apply_other(key, value, source):
                continue
            if key == "topic_defaults":
                self.topic_defaults.update(
                    validate_topic_configs({k: str(v) for k, v in value.items()})
                )
            elif key == "flush":
                # Shorthand for the broker-wide flush.policy default.
                self.topic_defaults.update(validate_topic_configs({"flush.policy": str(value)}))
            elif key in known:
                setattr(self, key, _coerce(getattr(self, key), value, f"{source}: {key}"))
            else:
                raise InvalidConfig(f"{source}: unknown setting {key!r}")


def _coerce(current: Any, value: Any, what: str) -> Any:
    if isinstance(current, bool):
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise InvalidConfig(f"{what}: {value!r} is not a boolean")
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    if isinstance(current, int):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InvalidConfig(f"{what}: {value!r} is not an integer") from None
    if isinstance(current, Path):
        return Path(value)
    return None if value in (None, "") else str(value)
