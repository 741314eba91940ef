"""Queues over every bulk store on a real beanstalkd (the fixtures of tests/integration)."""

from tests.integration.conftest import queue_defaults, store

__all__ = ["queue_defaults", "store"]
