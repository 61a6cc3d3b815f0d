"""AMQP queue x-arguments into neutral core settings, with RabbitMQ's error
texts; equivalence of redeclares; the standard exchanges an AMQP listener
installs in the core."""

from __future__ import annotations

import asyncio

import pytest

from dovecote.amqp.arguments import (
    HEADERS_MATCHING,
    STANDARD_EXCHANGES,
    check_equivalent,
    install,
    queue_settings,
    reserved,
)
from dovecote.amqp.errors import PRECONDITION_FAILED, ChannelError
from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.core.queue_settings import (
    DROP_HEAD,
    REJECT_NEW,
    REJECT_NEW_DEAD_LETTER,
    QueueSettings,
)
from dovecote.core.queues import AccessRefused
from dovecote.storage.batch import Record


def test_x_arguments_become_neutral_settings():
    settings = queue_settings(
        {
            "x-message-ttl": 100,
            "x-expires": 5000,
            "x-max-length": 10,
            "x-max-length-bytes": 1 << 20,
            "x-overflow": b"reject-publish-dlx",
            "x-dead-letter-exchange": b"dlx",
            "x-dead-letter-routing-key": "dead",
            "x-max-priority": 9,
            "x-delivery-limit": 3,
            "x-queue-type": "classic",  # not a setting: checked by the channel
        },
        "q",
    )
    assert settings == QueueSettings(
        message_ttl_ms=100,
        expires_ms=5000,
        max_length=10,
        max_length_bytes=1 << 20,
        overflow=REJECT_NEW_DEAD_LETTER,
        dead_letter_exchange="dlx",
        dead_letter_routing_key="dead",
        max_priority=9,
        max_deliveries=3,
    )
    assert queue_settings({}) == QueueSettings()
    assert queue_settings({"x-overflow": "drop-head"}).overflow == DROP_HEAD
    assert queue_settings({"x-overflow": "reject-publish"}).overflow == REJECT_NEW


@pytest.mark.parametrize(
    ("arguments", "text"),
    [
        (
            {"x-max-length": "ten"},
            "invalid arg 'x-max-length' for queue 'q' in vhost '/': "
            '"expected integer, got longstr"',
        ),
        (
            {"x-message-ttl": 1.5},
            "invalid arg 'x-message-ttl' for queue 'q' in vhost '/': "
            '"expected integer, got float"',
        ),
        ({"x-max-length": True}, "invalid arg 'x-max-length' for queue 'q' in vhost '/': "),
        (
            {"x-message-ttl": -1},
            "invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}",
        ),
        ({"x-expires": 0}, "invalid arg 'x-expires' for queue 'q' in vhost '/': {value_zero,0}"),
        (
            {"x-max-priority": 256},
            "invalid arg 'x-max-priority' for queue 'q' in vhost '/': {max_value_exceeded,256}",
        ),
        ({"x-overflow": "sideways"}, "invalid arg 'x-overflow' for queue 'q' in vhost '/': "),
    ],
)
def test_invalid_x_arguments_read_as_rabbitmq(arguments, text):
    with pytest.raises(ChannelError) as info:
        queue_settings(arguments, "q")
    assert info.value.code == PRECONDITION_FAILED
    assert info.value.text.startswith(text)


def test_redeclare_equivalence_on_x_arguments_only():
    current = {"x-max-length": 5, "x-queue-type": "classic", "other": 1}
    check_equivalent("q", {"x-max-length": 5, "x-queue-type": "classic", "other": 2}, current)
    with pytest.raises(ChannelError) as info:
        check_equivalent("q", {"x-max-length": 6, "x-queue-type": "classic"}, current)
    assert info.value.text == (
        "inequivalent arg 'x-max-length' for queue 'q' in vhost '/': "
        "received '6' but current is '5'"
    )
    with pytest.raises(ChannelError, match="received 'none' but current is 'classic'"):
        check_equivalent("q", {"x-max-length": 5}, current)
    with pytest.raises(ChannelError, match="received 'true' but current is 'none'"):
        check_equivalent("q", {**current, "x-single-active-consumer": True}, current)


def test_reserved_names():
    assert reserved("amq.direct") and reserved("amq.gen-x")
    assert not reserved("amqx") and not reserved("orders")


def test_install_gives_the_core_the_standard_exchanges(tmp_path):
    async def main():
        core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}))
        await core.start()
        qm = core.queues
        assert not any(name.startswith("amq.") for name in qm.router.exchanges)
        install(qm)
        for name, kind in STANDARD_EXCHANGES.items():
            assert qm.router.exchanges[name].type == kind
        with pytest.raises(AccessRefused):
            await qm.delete_exchange("amq.direct")
        assert qm.router.headers_matching == HEADERS_MATCHING
        await qm.declare_queue("pdfs")
        await qm.bind("amq.match", "pdfs", "", arguments={"x-match": "any", "format": "pdf"})
        routed = await qm.publish("amq.match", "", [Record(b"x")], headers={"format": "pdf"})
        assert routed.queues == ["pdfs"]
        install(qm)  # a second listener: nothing changes
        assert qm.router.exchanges["amq.match"].bindings
        await core.stop()

    asyncio.run(main())
