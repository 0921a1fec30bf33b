"""Moved: the engine stub is st2bridge.engine.stub.StubEngine (it passes the
same contract suite as MistralClient). This name stays for tests written
against the old fake; new tests import StubEngine."""

from st2bridge.engine.stub import StubEngine as FakeEngine

__all__ = ["FakeEngine"]
