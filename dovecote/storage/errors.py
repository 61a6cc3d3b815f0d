"""The storage layer's own error: what a full or failing disk looks like to callers."""

from __future__ import annotations


class StorageError(OSError):
    """A write or fsync failed (disk full, I/O error): the data is not durable
    and was not acknowledged. Adapters answer with their storage error code
    (Kafka: KAFKA_STORAGE_ERROR); the broker keeps serving reads."""
