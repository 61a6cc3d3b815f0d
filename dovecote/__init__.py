"""Dovecote: one message broker, one durable log, many wire protocols."""

__version__ = "0.1.0"
