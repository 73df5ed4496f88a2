"""The Helm chart, rendered by a real ``helm`` and checked as Kubernetes would see it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from schemas import topics
from tests.helm.conftest import (
    CHART,
    KUBE_VERSION,
    PRODUCTION_VALUES,
    HelmFailed,
    Render,
    component,
    containers,
    env_of,
    of_kind,
    run_helm,
    workloads,
)

COMPONENTS = {
    "scheduler": ["schedule"],
    "ingest": ["consume", "ingest"],
    "enrich": ["consume", "enrich"],
    "alerts": ["consume", "alerts"],
}
NATIVE_API_GROUPS = ("v1", "apps/v1", "batch/v1", "networking.k8s.io/v1")


@pytest.mark.parametrize("values", [None, PRODUCTION_VALUES], ids=["default", "production"])
def test_helm_lint_strict_passes(helm: str, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    if values is not None:
        args += ["-f", str(values)]
    done = run_helm(helm, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("which", ["default", "production"])
def test_every_native_manifest_validates_against_the_kubernetes_schema(
    which: str, request: pytest.FixtureRequest
) -> None:
    manifests: list[dict[str, Any]] = request.getfixturevalue(f"{which}_manifests")
    native = [m for m in manifests if m["apiVersion"] in NATIVE_API_GROUPS]
    assert len(native) >= 10
    for manifest in native:
        # strict: unknown fields are errors too (a typo in a template would pass otherwise)
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
    unknown = {m["apiVersion"] for m in manifests} - set(NATIVE_API_GROUPS)
    assert unknown <= {"monitoring.coreos.com/v1", "kafka.strimzi.io/v1beta2"}


def test_kubernetes_validate_catches_a_broken_manifest(
    default_manifests: list[dict[str, Any]],
) -> None:
    """The validator used above really rejects a wrong field (so its passing means something)."""
    deployment = json.loads(json.dumps(of_kind(default_manifests, "Deployment")[0]))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["runAsNonRoot"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("which", ["default", "production"])
def test_one_deployment_per_component_from_one_image(
    which: str, request: pytest.FixtureRequest
) -> None:
    manifests: list[dict[str, Any]] = request.getfixturevalue(f"{which}_manifests")
    deployments = {component(d): d for d in of_kind(manifests, "Deployment")}
    assert set(COMPONENTS) <= set(deployments)
    images = set()
    for name, args in COMPONENTS.items():
        (container,) = containers(deployments[name])
        assert container["command"] == ["grenswacht"]
        assert container["args"] == args
        images.add(container["image"])
        selector = deployments[name]["spec"]["selector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == name
    assert len(images) == 1
    assert deployments["scheduler"]["spec"]["replicas"] == 1
    assert deployments["scheduler"]["spec"]["strategy"]["type"] == "Recreate"


def _assert_restricted(pod_spec: dict[str, Any], container: dict[str, Any]) -> None:
    pod = pod_spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod_spec["automountServiceAccountToken"] is False


@pytest.mark.parametrize("which", ["default", "production"])
def test_security_settings_of_every_workload(which: str, request: pytest.FixtureRequest) -> None:
    manifests: list[dict[str, Any]] = request.getfixturevalue(f"{which}_manifests")
    checked = 0
    for workload in workloads(manifests):
        pod_spec = workload["spec"]["template"]["spec"]
        for container in containers(workload):
            _assert_restricted(pod_spec, container)
            security = container["securityContext"]
            if component(workload) == "probe-scamper":
                assert security["capabilities"]["add"] == ["NET_RAW"]
                assert security["allowPrivilegeEscalation"] is True  # file capability of scamper
                assert container["image"].endswith("-scamper")
            else:
                assert "add" not in security["capabilities"]
                assert security["allowPrivilegeEscalation"] is False
                assert not container["image"].endswith("-scamper")
            assert "privileged" not in security
            assert not pod_spec.get("hostNetwork")
            checked += 1
    assert checked >= (5 if which == "default" else 7)


def test_scamper_probe_adds_exactly_net_raw_and_rootless_probe_adds_nothing(
    production_manifests: list[dict[str, Any]],
) -> None:
    by_component = {component(w): w for w in workloads(production_manifests)}
    (probe,) = containers(by_component["probe"])
    (raw,) = containers(by_component["probe-scamper"])
    assert probe["args"] == ["probe", "run"]
    assert raw["args"] == ["probe", "run"]
    assert probe["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert raw["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert env_of(raw)["GRENSWACHT_PROBE__NAME"]["value"] == "utrecht-dc1-raw"
    sysctls = by_component["probe"]["spec"]["template"]["spec"]["securityContext"]["sysctls"]
    assert {"name": "net.ipv4.ping_group_range", "value": "0 2147483647"} in sysctls
    assert env_of(probe)["GRENSWACHT_PROBE__NAME"]["value"] == "utrecht-dc1"


def test_probe_as_daemonset_names_each_vantage_point_after_its_node(render: Render) -> None:
    manifests = render(set_values={"probe.enabled": True, "probe.kind": "DaemonSet",
                                   "probe.vantagePointPrefix": "k8s-"})
    (daemonset,) = of_kind(manifests, "DaemonSet")
    (container,) = containers(daemonset)
    env = env_of(container)
    assert env["GW_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["GRENSWACHT_PROBE__NAME"]["value"] == "k8s-$(GW_NODE_NAME)"
    names = [item["name"] for item in container["env"]]
    assert names.index("GW_NODE_NAME") < names.index("GRENSWACHT_PROBE__NAME")
    assert "replicas" not in daemonset["spec"]
    kubernetes_validate.validate(daemonset, KUBE_VERSION, strict=True)


def test_secrets_are_referenced_never_inlined(production_manifests: list[dict[str, Any]]) -> None:
    assert of_kind(production_manifests, "Secret") == []
    text = json.dumps(production_manifests)
    assert not re.search(r"(?i)password\"?\s*[:=]\s*\"?[^\"$(]", text.replace("passwordKey", ""))
    by_component = {component(w): w for w in workloads(production_manifests)}
    scheduler_env = env_of(containers(by_component["scheduler"])[0])
    secret_refs = {
        name: item["valueFrom"]["secretKeyRef"]
        for name, item in scheduler_env.items() if "valueFrom" in item
    }
    assert secret_refs == {
        "GRENSWACHT_KAFKA__SASL_PLAIN_PASSWORD": {"name": "grenswacht", "key": "password"},
        "GW_CLICKHOUSE_USER": {"name": "grenswacht-clickhouse", "key": "username"},
        "GW_CLICKHOUSE_PASSWORD": {"name": "grenswacht-clickhouse", "key": "password"},
    }
    # the DSN is composed by Kubernetes from the Secret-backed variables defined before it
    names = list(scheduler_env)
    assert names.index("GW_CLICKHOUSE_PASSWORD") < names.index("GRENSWACHT_STORAGE")
    assert scheduler_env["GRENSWACHT_STORAGE"]["value"] == (
        "https://$(GW_CLICKHOUSE_USER):$(GW_CLICKHOUSE_PASSWORD)"
        "@clickhouse-grenswacht.clickhouse.svc:8443/grenswacht"
    )
    assert scheduler_env["GRENSWACHT_BUS"]["value"] == "kafka://kafka-kafka-bootstrap.kafka.svc:9093"
    assert scheduler_env["GRENSWACHT_KAFKA__SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    # the Atlas key is a mounted file, and only the scheduler gets it
    scheduler_pod = by_component["scheduler"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in scheduler_pod["volumes"]}
    assert volumes["atlas-key"]["secret"]["secretName"] == "grenswacht-atlas"
    key_file = scheduler_env["GRENSWACHT_ATLAS__API_KEY_FILE"]["value"]
    assert key_file == "/etc/grenswacht/atlas/api-key"
    for name, workload in by_component.items():
        env = env_of(containers(workload)[0])
        pod_volumes = {v["name"] for v in workload["spec"]["template"]["spec"]["volumes"]}
        if name != "scheduler":
            assert "GRENSWACHT_ATLAS__API_KEY_FILE" not in env, name
            assert "atlas-key" not in pod_volumes, name
        if name.startswith("probe"):  # a vantage point needs Kafka only
            assert "GRENSWACHT_STORAGE" not in env and "GW_CLICKHOUSE_PASSWORD" not in env
            assert "GRENSWACHT_SERVER__TOKEN_FILE" not in env and "server-token" not in (
                pod_volumes)
        elif name != "migrate":  # the endpoint token: a mounted Secret, never inline
            assert env["GRENSWACHT_SERVER__TOKEN_FILE"]["value"] == "/etc/grenswacht/server/token"
            assert "GRENSWACHT_SERVER__TOKEN" not in env
            token_volume = next(v for v in workload["spec"]["template"]["spec"]["volumes"]
                                if v["name"] == "server-token")
            assert token_volume["secret"]["secretName"] == "grenswacht-server"
            assert token_volume["secret"]["items"] == [{"key": "token", "path": "token"}]


def test_whole_dsn_from_a_secret(render: Render) -> None:
    manifests = render(set_values={"clickhouse.dsnSecret.name": "ch-dsn"})
    for workload in of_kind(manifests, "Deployment", "Job"):
        env = env_of(containers(workload)[0])
        assert env["GRENSWACHT_STORAGE"]["valueFrom"]["secretKeyRef"] == {
            "name": "ch-dsn", "key": "dsn"}


@pytest.mark.parametrize("which", ["default", "production"])
def test_health_probes_on_the_metrics_port(which: str, request: pytest.FixtureRequest) -> None:
    manifests: list[dict[str, Any]] = request.getfixturevalue(f"{which}_manifests")
    for workload in of_kind(manifests, "Deployment", "DaemonSet"):
        (container,) = containers(workload)
        assert container["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
        env = env_of(container)
        assert env["GRENSWACHT_METRICS__PORT"]["value"] == "9464"


def test_network_policy_per_component(production_manifests: list[dict[str, Any]]) -> None:
    policies = {component(p): p for p in of_kind(production_manifests, "NetworkPolicy")}
    deployed = {component(w) for w in of_kind(production_manifests, "Deployment", "DaemonSet")}
    assert deployed | {"migrate"} == set(policies)
    for name, policy in policies.items():
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == name
        if name == "migrate":
            assert spec["ingress"] == []
            continue
        (ingress,) = spec["ingress"]
        assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
        assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "monitoring"}
        egress_ports = {p["port"] for rule in spec["egress"] for p in rule.get("ports", [])}
        if name.startswith("probe"):
            assert spec["egress"] == [{}]  # a vantage point measures the whole Internet
        elif name in ("scheduler", "alerts"):
            assert egress_ports == {53, 9093, 8443, 443}
        else:
            assert egress_ports == {53, 9093, 8443}


def test_network_policies_can_be_turned_off(render: Render) -> None:
    assert of_kind(render(set_values={"networkPolicy.enabled": False}), "NetworkPolicy") == []


def test_service_monitor_option(
    default_manifests: list[dict[str, Any]], production_manifests: list[dict[str, Any]]
) -> None:
    assert of_kind(default_manifests, "ServiceMonitor") == []
    (monitor,) = of_kind(production_manifests, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}]
    services = of_kind(production_manifests, "Service")
    selected = [s for s in services
                if all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())]
    workloads_ = of_kind(production_manifests, "Deployment", "DaemonSet")
    assert {component(s) for s in selected} == {component(w) for w in workloads_}
    for service in selected:
        assert service["spec"]["ports"][0]["name"] == "metrics"


def test_migration_job_is_a_hook_and_uses_the_cluster_flag(
    default_manifests: list[dict[str, Any]], production_manifests: list[dict[str, Any]]
) -> None:
    (default_job,) = of_kind(default_manifests, "Job")
    assert containers(default_job)[0]["args"] == ["migrate"]
    (job,) = of_kind(production_manifests, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert containers(job)[0]["args"] == ["migrate", "--cluster", "grenswacht",
                                          "--database", "grenswacht"]
    # a pre-install hook runs before the chart's ServiceAccount and ConfigMap exist
    spec = job["spec"]["template"]["spec"]
    assert "serviceAccountName" not in spec
    assert all("configMap" not in v for v in spec["volumes"])


def test_strimzi_topics_match_the_wire_contract(
    production_manifests: list[dict[str, Any]], default_manifests: list[dict[str, Any]]
) -> None:
    assert of_kind(default_manifests, "KafkaTopic") == []
    kafka_topics = of_kind(production_manifests, "KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in kafka_topics) == sorted(topics.ALL_TOPICS)
    for topic in kafka_topics:
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "kafka"
        assert re.fullmatch(r"[a-z0-9-]+", topic["metadata"]["name"])
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["max.message.bytes"] >= topics.MAX_MESSAGE_BYTES
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in kafka_topics}
    assert partitions[topics.RESULTS] == 12


def test_default_topic_values_match_schemas_topics() -> None:
    """values.yaml's partitions and retention are the defaults of schemas/topics.py."""
    import yaml

    values = yaml.safe_load((CHART / "values.yaml").read_text())["kafka"]["topics"]
    keys = {topics.RESULTS: "results", topics.PROBE_TASKS: "probeTasks",
            topics.FINDINGS: "findings", topics.VERDICTS: "verdicts", topics.ALERTS: "alerts",
            topics.DEAD_LETTERS: "deadLetters", topics.VANTAGE_POINTS: "vantagePoints",
            topics.CONFIRM_REQUESTS: "confirmRequests"}
    for spec in topics.DEFAULT_TOPIC_SPECS:
        assert values[keys[spec.name]] == {"partitions": spec.partitions,
                                           "retentionMs": spec.retention_ms}
    template = (CHART / "templates" / "_helpers.tpl").read_text()
    for name in topics.ALL_TOPICS:
        assert f'"{name}"' in template


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        ({"kafka.bootstrapServers": "kafka://broker:9092"}, "bootstrapServers"),
        ({"clickhouse.url": "https://user:secret@ch:8443"}, "url"),
        ({"components.scheduler.replicas": 2}, "replicas"),
        ({"probe.kind": "StatefulSet"}, "kind"),
        ({"metrics.port": 70000}, "port"),
        ({"image.digest": "latest"}, "digest"),
        ({"kafka.sasl.mechanism": "GSSAPI"}, "mechanism"),
        ({"clickhouse.pasword": "x"}, "pasword"),
        ({"config.storage": "http://x"}, "config"),
    ],
)
def test_values_schema_rejects_bad_values(
    render: Render, set_values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmFailed) as failure:
        render(set_values=set_values)
    assert "values don't meet the specifications of the schema" in failure.value.stderr
    assert message in failure.value.stderr


def test_required_values_fail_with_a_clear_message(render: Render) -> None:
    with pytest.raises(HelmFailed) as failure:
        render(set_values={"probe.enabled": True})
    assert "probe.vantagePoint is required" in failure.value.stderr
    with pytest.raises(HelmFailed) as failure:
        render(set_values={"kafka.sasl.enabled": True})
    assert "kafka.sasl.existingSecret is required" in failure.value.stderr


def test_config_and_inventory_reach_the_pods_and_restart_them_on_change(render: Render) -> None:
    first = render(values_files=[PRODUCTION_VALUES])
    second = render(values_files=[PRODUCTION_VALUES],
                    set_values={"config.ingest.batch_size": 1000})
    (config_map,) = [c for c in of_kind(first, "ConfigMap") if c["metadata"]["name"].endswith(
        "-config")]
    assert set(config_map["data"]) == {"grenswacht.toml", "apps.toml"}

    def checksums(manifests: list[dict[str, Any]]) -> set[str]:
        return {d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                for d in of_kind(manifests, "Deployment")}

    assert len(checksums(first)) == 1
    assert checksums(first) != checksums(second)
