"""What the chart hands the program is what the program reads: the rendered grenswacht.toml
and inventory go through grenswacht's own loaders, and every ``GRENSWACHT_*`` variable the
chart sets names a real settings field (pydantic-settings ignores unknown variables, so a
typo there would otherwise be silent)."""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from grenswacht.settings import Settings, load_settings
from tests.helm.conftest import Render, component, containers, env_of, of_kind, workloads

# Variables the chart sets that are not settings fields: the config file's path, HOME, the
# component's name (for logs/metrics labels) and the helpers Kubernetes expands into others.
NOT_SETTINGS = {"GRENSWACHT_CONFIG", "GRENSWACHT_COMPONENT"}


def _config_map(manifests: list[dict[str, Any]]) -> dict[str, str]:
    (config_map,) = [c for c in of_kind(manifests, "ConfigMap")
                     if c["metadata"]["name"].endswith("-config")]
    return dict(config_map["data"])


def test_rendered_config_file_is_valid_for_grenswacht(
    production_manifests: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = tmp_path / "grenswacht.toml"
    config.write_text(_config_map(production_manifests)["grenswacht.toml"])
    settings = load_settings(config)
    assert settings.ingest.batch_size == 5000
    assert settings.ingest.flush_interval_s == 2.0
    assert settings.atlas.daily_credit_budget == 200000
    assert settings.probe.location()["city"] == "Utrecht"


def test_default_config_file_is_valid_for_grenswacht(
    default_manifests: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = tmp_path / "grenswacht.toml"
    config.write_text(_config_map(default_manifests)["grenswacht.toml"])
    assert load_settings(config).ingest.batch_size == Settings().ingest.batch_size


def test_production_inventory_is_valid_and_names_the_deployed_vantage_points(
    production_manifests: list[dict[str, Any]], tmp_path: Path
) -> None:
    from scheduler.inventory import SelfHostedVantageSet, load_inventory

    inventory_file = tmp_path / "apps.toml"
    inventory_file.write_text(_config_map(production_manifests)["apps.toml"])
    inventory = load_inventory(inventory_file)
    assert {a.name for a in inventory.applications} == {"TOPdesk", "Microsoft 365 sign-in"}
    self_hosted = {probe for v in inventory.vantage_sets
                   if isinstance(v, SelfHostedVantageSet) for probe in v.probes}
    deployed = {
        env_of(containers(w)[0])["GRENSWACHT_PROBE__NAME"]["value"]
        for w in workloads(production_manifests) if component(w).startswith("probe")
    }
    assert deployed == self_hosted == {"utrecht-dc1", "utrecht-dc1-raw"}


def test_a_broken_inventory_in_values_is_caught_by_the_scheduler_loader(
    render: Render, tmp_path: Path
) -> None:
    from scheduler.inventory import load_inventory
    from schemas.errors import ConfigError

    manifests = render(set_values={"inventory.content": "[[application]]\nname = \"x\"\n"})
    inventory_file = tmp_path / "apps.toml"
    inventory_file.write_text(_config_map(manifests)["apps.toml"])
    with pytest.raises(ConfigError, match="hostnames"):
        load_inventory(inventory_file)


# Settings sections whose owners defined a model that is not (yet) a field of Settings: the
# chart's variables are checked against that model directly.
PENDING_SECTIONS = {"kafka": ("schemas.bus.kafka_settings", "KafkaSettings")}
SECRET = "from-a-secret"  # noqa: S105 - a placeholder for a Secret's value


def settings_model() -> type[Settings]:
    """Settings plus the pending sections (a no-op once the lead registers them)."""
    import importlib

    from pydantic import Field, create_model

    extra: dict[str, Any] = {}
    for section, (module, name) in PENDING_SECTIONS.items():
        if section not in Settings.model_fields:
            model = getattr(importlib.import_module(module), name)
            extra[section] = (model, Field(default_factory=model))
    if not extra:
        return Settings
    return create_model("ChartSettings", __base__=Settings, **extra)


def _field_model(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    """The nested settings model of field ``name`` (``None``: not a model)."""
    annotation = model.model_fields[name].annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _chart_settings_variables(manifests: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for workload in workloads(manifests):
        for container in containers(workload):
            names |= {n for n in env_of(container) if n.startswith("GRENSWACHT_")}
    return names - NOT_SETTINGS


def test_every_settings_variable_the_chart_sets_is_a_settings_field(
    production_manifests: list[dict[str, Any]], render: Render
) -> None:
    daemonset = render(set_values={"probe.enabled": True, "probe.kind": "DaemonSet"})
    variables = _chart_settings_variables(production_manifests) | _chart_settings_variables(
        daemonset)
    assert {"GRENSWACHT_BUS", "GRENSWACHT_STORAGE", "GRENSWACHT_DATA_DIR",
            "GRENSWACHT_KAFKA__SASL_PLAIN_PASSWORD"} <= variables
    root = settings_model()
    missing_sections: set[str] = set()
    for variable in sorted(variables):
        path = variable.removeprefix("GRENSWACHT_").lower().split("__")
        model: type[BaseModel] | None = root
        for depth, part in enumerate(path):
            assert model is not None, f"{variable}: {path[depth - 1]} is not a settings section"
            if part not in model.model_fields:
                if depth == 0 and len(path) > 1:
                    missing_sections.add(part)
                    break
                pytest.fail(f"{variable}: no settings field {'.'.join(path[: depth + 1])}")
            model = _field_model(model, part)
    if missing_sections:
        pytest.skip(
            "the chart sets variables of settings sections not in grenswacht/settings.py yet: "
            + ", ".join(sorted(missing_sections))
            + " (docs/deploy.md lists the variables; every other variable was checked)"
        )


def _resolve(env: dict[str, dict[str, Any]], mounts: Path) -> dict[str, str]:
    """The variables as the container sees them: Secret values stand in as a placeholder,
    $(VAR) references expanded as Kubernetes does, mounted files created under ``mounts``."""
    resolved: dict[str, str] = {}
    for name, item in env.items():
        if "valueFrom" in item:
            value = SECRET if "secretKeyRef" in item["valueFrom"] else "node-1"
        else:
            value = str(item["value"])
            for other, seen in resolved.items():
                value = value.replace(f"$({other})", seen)
        if value.startswith("/etc/grenswacht/"):
            file = mounts / value.lstrip("/")
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text("mounted\n")
            value = str(file)
        resolved[name] = value
    return resolved


def test_each_components_environment_is_accepted_by_the_settings_model(
    production_manifests: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = settings_model()
    checked = set()
    for workload in workloads(production_manifests):
        env = _resolve(env_of(containers(workload)[0]), tmp_path / component(workload))
        with monkeypatch.context() as patch:
            for name in [n for n in os.environ if n.startswith("GRENSWACHT")]:
                patch.delenv(name)
            for name, value in env.items():
                if name.startswith("GRENSWACHT_") and name not in NOT_SETTINGS:
                    patch.setenv(name, value)
            settings = model()
        checked.add(component(workload))
        if not component(workload).startswith("probe"):
            assert settings.storage == (
                f"https://{SECRET}:{SECRET}@clickhouse-grenswacht.clickhouse.svc:8443/grenswacht")
        if component(workload) == "migrate":  # needs ClickHouse only
            continue
        kafka = getattr(settings, "kafka")  # noqa: B009 - a pending section until registered
        assert settings.bus == "kafka://kafka-kafka-bootstrap.kafka.svc:9093"
        assert kafka.security_protocol == "SASL_SSL"
        assert kafka.sasl_plain_password.get_secret_value() == SECRET
        assert kafka.ssl_cafile is not None and kafka.ssl_cafile.is_file()
        assert kafka.create_topics is False  # Strimzi's topic operator owns them
        assert kafka.replication_factor == 3
        assert kafka.partitions["grenswacht.results.v1"] == 12
        if component(workload) == "scheduler":
            assert settings.atlas.resolved_api_key() is not None
            assert settings.atlas.inventory is not None and settings.atlas.inventory.is_file()
    assert {"migrate", "scheduler", "ingest", "enrich", "alerts", "probe",
            "probe-scamper"} <= checked
