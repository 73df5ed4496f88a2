"""A loopback RIPE Atlas per test, and settings/clients pointed at it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from scheduler.atlas import AtlasClient, open_atlas
from scheduler.settings import AtlasSettings
from tests.fakes.atlas import DEMO_KEY, FakeAtlas

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scheduler"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture()
def fake_atlas(tmp_path: Path) -> Iterator[FakeAtlas]:
    fake = FakeAtlas(tmp_path / "fake-atlas").start()
    yield fake
    fake.stop()


@pytest.fixture()
def atlas_settings(fake_atlas: FakeAtlas, tmp_path: Path) -> AtlasSettings:
    return AtlasSettings(
        api_key=SecretStr(DEMO_KEY),
        base_url=fake_atlas.base_url,
        stream_url=fake_atlas.stream_url,
        ca_bundle=fake_atlas.ca_file,
        inventory=EXAMPLES / "apps.toml",
        state_file=tmp_path / "atlas-state.json",
        max_retries=3,
        http_timeout_s=10,
    )


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture()
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture()
def client(atlas_settings: AtlasSettings, sleeps: Sleeps) -> AtlasClient:
    return open_atlas(atlas_settings, sleep=sleeps)


@pytest.fixture()
def bus_url() -> str:
    return f"memory://sched-{uuid.uuid4().hex}"
