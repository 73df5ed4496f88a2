"""cousteau against the loopback RIPE Atlas over real HTTPS: exact bodies, retries,
auth errors, and the key never leaking."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from scheduler.atlas import PERMISSION_CREATE, PERMISSION_LIST, create_body, open_atlas
from scheduler.inventory import load_inventory
from scheduler.jobs import apply_plan, plan_for
from scheduler.settings import AtlasSettings
from schemas.errors import AtlasAPIError, AtlasAuthError, AtlasRateLimited
from tests.fakes.atlas import DEMO_KEY, FakeAtlas
from tests.fakes.atlas.state import recorded_probes
from tests.scheduler.conftest import Sleeps


def test_created_measurements_carry_the_planned_bodies(
    fake_atlas: FakeAtlas, client, atlas_settings: AtlasSettings
) -> None:
    plan = plan_for(atlas_settings)
    report = apply_plan(plan, client, atlas_settings)
    posts = [r for r in fake_atlas.state.requests if r.method == "POST"]
    assert [r.body for r in posts] == [r.body for r in plan.requests if r.method == "POST"]
    assert all(r.authorized for r in posts)
    # 7 hostnames x 6 from nl, 6 (not Zoom) x 6 from nl-overheid, 6 x 2 ICMP from reference
    assert len(report.created) == len(plan.selected) == 42 + 36 + 12
    # the ids come back in definition order and map onto the right spec
    for msm_id, key in report.created.items():
        assert key in fake_atlas.state.measurements[msm_id].meta["tags"]


def test_exact_body_of_one_request(fake_atlas: FakeAtlas, client) -> None:
    definition = {
        "af": 6,
        "target": "app.zivver.com",
        "protocol": "ICMP",
        "paris": 16,
        "resolve_on_probe": True,
        "interval": 7200,
        "description": "d",
        "tags": ["grenswacht", "gw-1234567890"],
    }
    source = {
        "type": "probes",
        "value": "6001,6002",
        "requested": 2,
        "tags": {"include": ["system-ipv6-works"]},
    }
    ids = client.create([("traceroute", definition)], [source], False)
    sent = fake_atlas.state.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/api/v2/measurements/")
    assert sent.body == {
        "definitions": [{"type": "traceroute", **definition}],
        "probes": [source],
        "is_oneoff": False,
    }
    assert sent.body == create_body([("traceroute", definition)], [source], False)
    assert fake_atlas.state.measurements[ids[0]].meta["target"] == "app.zivver.com"


def test_reconcile_listing_follows_pages_and_stop(fake_atlas: FakeAtlas, client) -> None:
    ids = client.create(
        [
            (
                "dns",
                {
                    "af": 4,
                    "query_class": "IN",
                    "query_type": "A",
                    "query_argument": f"h{i}.example.nl",
                    "description": "d",
                    "tags": ["grenswacht"],
                },
            )
            for i in range(3)
        ],
        [{"type": "country", "value": "NL", "requested": 1}],
        False,
    )
    mine = client._paged(
        "/api/v2/measurements/my/",
        {"tags": "grenswacht", "page_size": 2},
        "listing",
        PERMISSION_LIST,
    )
    assert [m["id"] for m in mine] == ids
    client.stop(ids[0])
    assert [m["id"] for m in client.my_measurements("grenswacht")] == ids[1:]
    assert fake_atlas.state.requests[-2].path == f"/api/v2/measurements/{ids[0]}"


def test_probe_listing_uses_recorded_real_probes(client) -> None:
    probes = client.probes(country_code="NL", tags="system-ipv4-works")
    expected = [
        p["id"]
        for p in recorded_probes()
        if p["country_code"] == "NL" and "system-ipv4-works" in {t["slug"] for t in p["tags"]}
    ]
    assert [p["id"] for p in probes] == expected and len(expected) > 5


def test_429_retry_after_is_honoured(fake_atlas: FakeAtlas, client, sleeps: Sleeps) -> None:
    fake_atlas.state.fail_next(429, count=2, retry_after="7")
    assert client.my_measurements("grenswacht") == []
    assert sleeps == [7.0, 7.0]
    listing = [r for r in fake_atlas.state.requests if r.path == "/api/v2/measurements/my/"]
    assert len(listing) == 3


def test_5xx_backs_off_exponentially_then_gives_up(
    fake_atlas: FakeAtlas, client, sleeps: Sleeps
) -> None:
    fake_atlas.state.fail_next(503, count=10)
    with pytest.raises(AtlasRateLimited) as caught:
        client.results(1033154)
    assert sleeps == [1.0, 2.0, 4.0]  # max_retries = 3
    assert "HTTP 503" in str(caught.value) and caught.value.retry_after == 8.0


def test_http_date_retry_after(fake_atlas: FakeAtlas, client, sleeps: Sleeps) -> None:
    fake_atlas.state.fail_next(502, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    fake_atlas.state.add_recorded(1071935)
    assert client.results(1071935) == []
    # a date in the past asks for no wait: the policy's first backoff (schemas/retry.py)
    assert sleeps == [1.0]


def test_invalid_key_is_one_clear_error(atlas_settings: AtlasSettings, fake_atlas) -> None:
    settings = atlas_settings.model_copy(update={"api_key": SecretStr("not-a-real-key")})
    client = open_atlas(settings, sleep=Sleeps())
    with pytest.raises(AtlasAuthError) as caught:
        client.create(
            [
                (
                    "dns",
                    {
                        "af": 4,
                        "query_class": "IN",
                        "query_type": "A",
                        "query_argument": "x.example.nl",
                        "description": "d",
                    },
                )
            ],
            [{"type": "country", "value": "NL", "requested": 1}],
            False,
        )
    message = str(caught.value)
    assert "refused the configured API key (HTTP 403)" in message
    assert repr(PERMISSION_CREATE) in message
    assert "The provided API key does not exist" in message
    assert "not-a-real-key" not in message


def test_key_without_permission_names_it(atlas_settings: AtlasSettings, fake_atlas) -> None:
    fake_atlas.state.add_key("read-only-key", ("results",))
    settings = atlas_settings.model_copy(update={"api_key": SecretStr("read-only-key")})
    with pytest.raises(AtlasAuthError, match="lacks the permission 'List your measurements'"):
        open_atlas(settings).my_measurements("grenswacht")


def test_no_key_at_all(atlas_settings: AtlasSettings, fake_atlas) -> None:
    settings = atlas_settings.model_copy(update={"api_key": None})
    with pytest.raises(AtlasAuthError, match="GRENSWACHT_ATLAS__API_KEY"):
        open_atlas(settings).stop(1)
    assert fake_atlas.state.requests == []  # refused before sending anything


def test_untrusted_certificate(atlas_settings: AtlasSettings, monkeypatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    settings = atlas_settings.model_copy(update={"ca_bundle": None})
    with pytest.raises(AtlasAPIError, match="TLS verification"):
        open_atlas(settings).my_measurements("grenswacht")


def test_key_file_and_environment(tmp_path, monkeypatch, fake_atlas: FakeAtlas) -> None:
    from grenswacht.settings import load_settings

    key_file = tmp_path / "atlas.key"
    key_file.write_text(DEMO_KEY + "\n")
    monkeypatch.setenv("GRENSWACHT_ATLAS__API_KEY_FILE", str(key_file))
    monkeypatch.setenv("GRENSWACHT_ATLAS__BASE_URL", fake_atlas.base_url)
    monkeypatch.setenv("GRENSWACHT_ATLAS__CA_BUNDLE", str(fake_atlas.ca_file))
    settings = load_settings().atlas
    assert settings.resolved_api_key().get_secret_value() == DEMO_KEY
    assert open_atlas(settings).my_measurements("grenswacht") == []
    monkeypatch.setenv("GRENSWACHT_ATLAS__API_KEY", "from-env")
    assert load_settings().atlas.resolved_api_key().get_secret_value() == "from-env"


def test_the_key_never_leaks(
    atlas_settings: AtlasSettings, fake_atlas: FakeAtlas, caplog, capsys, tmp_path
) -> None:
    from typer.testing import CliRunner

    from grenswacht.cli import app

    secret = "f00dfeed-0000-4bad-8000-5ecre7ke7000"  # noqa: S105
    fake_atlas.state.add_key(secret, ("results",))
    settings = atlas_settings.model_copy(update={"api_key": SecretStr(secret)})
    caplog.set_level(logging.DEBUG)
    client = open_atlas(settings, sleep=Sleeps())
    seen = [repr(client), repr(settings), str(settings), settings.model_dump_json()]
    fake_atlas.state.fail_next(500, count=1)
    for call in (
        lambda: client.my_measurements("grenswacht"),
        lambda: apply_plan(plan_for(settings), client, settings),
    ):
        with pytest.raises(AtlasAPIError) as caught:
            call()
        seen += [str(caught.value), repr(caught.value)]
    config = tmp_path / "grenswacht.toml"
    config.write_text(f'[atlas]\napi_key = "{secret}"\ninventory = "{settings.inventory}"\n')
    result = CliRunner().invoke(app, ["plan", "--dry-run", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "Authorization: Key **********" in result.output
    json_out = CliRunner().invoke(
        app, ["plan", "--dry-run", "--format", "json", "--config", str(config)]
    )
    seen += [result.output, json_out.output, caplog.text, *capsys.readouterr()]
    assert all(secret not in text for text in seen)
    assert "HTTP 500" in caplog.text  # the logs were captured, the key just isn't in them
    assert load_inventory(settings.inventory)  # type: ignore[arg-type]
