"""st2bridge: run workflows on the OpenStack Mistral engine and track their results."""

__version__ = "0.1.0"
