"""The engine side of the bridge: a Mistral REST API v2 client and its retry policy."""

from st2bridge.engine.client import MistralClient
from st2bridge.engine.retry import RetryPolicy, backoff_delay

__all__ = ["MistralClient", "RetryPolicy", "backoff_delay"]
