"""Pub/Sub resource names: ``projects/{project}/{collection}/{id}``.

Ids follow Google's rule for topics, subscriptions, snapshots and schemas:
3 to 255 characters, starting with a letter, of letters, digits and
``- _ . ~ + %``, not starting with ``goog``. A malformed name gets Google's
INVALID_ARGUMENT text, ``Invalid [topics] name: (name=...)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dovecote.pubsub.rpc import PubsubError, invalid

_ID = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
_PROJECT = re.compile(r"[^/]{1,255}")

TOPICS = "topics"
SUBSCRIPTIONS = "subscriptions"
SNAPSHOTS = "snapshots"
SCHEMAS = "schemas"

# A topic's name after DeleteTopic, in the subscriptions that outlive it.
DELETED_TOPIC = "_deleted-topic_"


@dataclass(frozen=True, slots=True)
class ResourceName:
    project: str
    collection: str
    id: str

    def __str__(self) -> str:
        return f"projects/{self.project}/{self.collection}/{self.id}"


def parse(name: str, collection: str) -> ResourceName:
    """``name`` as a resource of ``collection``, or INVALID_ARGUMENT."""
    parts = name.split("/")
    if (
        len(parts) != 4
        or parts[0] != "projects"
        or parts[2] != collection
        or not _PROJECT.fullmatch(parts[1])
        or not valid_id(parts[3])
    ):
        raise invalid(f"Invalid [{collection}] name: (name={name})")
    return ResourceName(parts[1], collection, parts[3])


def valid_id(resource_id: str) -> bool:
    return bool(_ID.fullmatch(resource_id)) and not resource_id.startswith("goog")


def parse_project(name: str) -> str:
    """The project of ``projects/{project}`` (what List* calls take)."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "projects" or not _PROJECT.fullmatch(parts[1]):
        raise invalid(f"Invalid [projects] name: (name={name})")
    return parts[1]


def topic(name: str) -> ResourceName:
    return parse(name, TOPICS)


def subscription(name: str) -> ResourceName:
    return parse(name, SUBSCRIPTIONS)


def snapshot(name: str) -> ResourceName:
    return parse(name, SNAPSHOTS)


__all__ = ["PubsubError", "ResourceName", "parse", "parse_project", "subscription", "topic"]
