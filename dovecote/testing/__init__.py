"""Run a broker for tests: in a background thread of this process
(:class:`BrokerThread`, what the pytest fixture uses) or as a separate process
that can be killed (:class:`BrokerProcess`)."""

from dovecote.testing.process import BrokerProcess
from dovecote.testing.thread import BrokerThread

__all__ = ["BrokerProcess", "BrokerThread"]
