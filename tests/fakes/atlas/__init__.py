"""A loopback RIPE Atlas (REST over HTTPS + the result stream) serving recorded real
results, for tests and for the offline demo (``python -m tests.fakes.atlas``)."""

from tests.fakes.atlas.server import FakeAtlas
from tests.fakes.atlas.state import DEMO_KEY, PERMISSIONS, FakeAtlasState, load_recorded

__all__ = ["DEMO_KEY", "PERMISSIONS", "FakeAtlas", "FakeAtlasState", "load_recorded"]
