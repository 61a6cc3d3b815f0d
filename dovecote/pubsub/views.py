"""What the admin API, the CLI and /metrics show of Pub/Sub: topics, and per
subscription the figures Pub/Sub users watch.

- ``backlog``: unacked messages (ready, delayed or in flight), Google's
  ``num_undelivered_messages``;
- ``oldest_unacked_age_s``: age of the oldest of them (``oldest_unacked_message_age``);
- ``dead_letter_depth``: for a subscription with a dead-letter policy, the
  backlog of the dead-letter topic's subscriptions, summed: messages
  dead-lettered and not yet handled. (A dead-letter topic without
  subscriptions shows 0: as in Google, what it receives reaches nobody.)
  None without a policy or when the dead-letter topic does not exist.
- ``push_endpoint`` and ``push_health``: the push deliverer's own account of
  the endpoint (see :data:`PushHealth`), None until it reports one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dovecote.pubsub.backlog import oldest_unacked_ms, unacked_count
from dovecote.pubsub.state import PubsubState, SubscriptionEntry
from dovecote.pubsub.sub_settings import retention_ms, ttl_ms

# The push deliverer's report on a subscription's endpoint, e.g.
# {"healthy": bool, "last_status": int, "consecutive_failures": int, ...};
# None: not a push subscription, or nothing to report yet.
PushHealth = Callable[[str], dict[str, Any] | None]


class PubsubViews:
    def __init__(self, core: Any, state: PubsubState) -> None:
        self.core = core
        self.state = state
        self.push_health: PushHealth = lambda name: None

    def topics(self) -> list[dict[str, Any]]:
        rows = []
        for name, entry in sorted(self.state.topics.items()):
            log = self.core.topic(entry.log_topic)
            pb = entry.pb
            rows.append(
                {
                    "name": name,
                    "log_topic": entry.log_topic,
                    "messages": 0
                    if log is None
                    else sum(p.high_watermark - p.log_start_offset for p in log.partitions),
                    "subscriptions": sorted(entry.subscriptions),
                    "labels": dict(pb.labels),
                    "message_retention_s": pb.message_retention_duration.seconds
                    if pb.HasField("message_retention_duration")
                    else None,
                    "schema": pb.schema_settings.schema or None,
                }
            )
        return rows

    def subscriptions(self) -> list[dict[str, Any]]:
        now_ms = self.core.clock.wall_ms()
        return [self.subscription(e, now_ms) for _, e in sorted(self.state.subscriptions.items())]

    def subscription(self, entry: SubscriptionEntry, now_ms: int) -> dict[str, Any]:
        pb = entry.pb
        sub = self.core.subscription(entry.core_id)
        ready = in_flight = None
        oldest = None
        if sub is not None:
            ready = int(sub.ready_count())
            in_flight = int(sub.unacked_count())
            oldest = oldest_unacked_ms(sub)
        dead_letter = pb.dead_letter_policy.dead_letter_topic or None
        ttl = ttl_ms(pb)
        endpoint = pb.push_config.push_endpoint or None
        return {
            "name": entry.name,
            "topic": pb.topic,
            "type": "push" if endpoint else "pull",
            "backlog": None if sub is None else ready + in_flight,  # type: ignore[operator]
            "messages_ready": ready,
            "messages_in_flight": in_flight,
            "oldest_unacked_age_s": None if oldest is None else max(0, now_ms - oldest) / 1000,
            "ack_deadline_s": pb.ack_deadline_seconds,
            "retain_acked_messages": pb.retain_acked_messages,
            "message_retention_s": retention_ms(pb) // 1000,
            "expiration_ttl_s": None if ttl is None else ttl // 1000,
            "filter": pb.filter or None,
            "ordering": pb.enable_message_ordering,
            "exactly_once": pb.enable_exactly_once_delivery,
            "dead_letter_topic": dead_letter,
            "dead_letter_depth": None if dead_letter is None else self.topic_backlog(dead_letter),
            "push_endpoint": endpoint,
            "push_health": None if endpoint is None else self.push_health(entry.name),
            "labels": dict(pb.labels),
        }

    def topic_backlog(self, topic_name: str) -> int | None:
        """Unacked messages of every subscription of a topic, summed."""
        topic = self.state.topic(topic_name)
        if topic is None:
            return None
        total = 0
        for name in topic.subscriptions:
            entry = self.state.subscription(name)
            sub = None if entry is None else self.core.subscription(entry.core_id)
            if sub is not None:
                total += unacked_count(sub)
        return total
