"""Fixtures for the chart tests: a real ``helm`` binary and a renderer.

``helm`` is found as ``$GRENSWACHT_HELM``, else in the cache ``tools/helm/install-helm.sh``
fills (``~/.cache/grenswacht/bin/helm``), else on ``PATH``. Without it the chart tests skip
and say how to get it (``tools/helm/check.sh`` fetches it and then runs these tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "grenswacht"
PRODUCTION_VALUES = ROOT / "examples" / "values-production.yaml"
KUBE_VERSION = "1.36.0"

Render = Callable[..., list[dict[str, Any]]]


def find_helm() -> str | None:
    explicit = os.environ.get("GRENSWACHT_HELM")
    if explicit:
        return explicit
    cache = Path(os.environ.get("GRENSWACHT_CACHE_DIR") or (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "grenswacht"))
    cached = cache / "bin" / "helm"
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    return shutil.which("helm")


@pytest.fixture(scope="session")
def helm() -> str:
    path = find_helm()
    if path is None:
        pytest.skip("helm is not installed: run tools/helm/install-helm.sh (go install, ~3 min) "
                    "or tools/helm/check.sh, or set GRENSWACHT_HELM")
    return path


class HelmFailed(Exception):
    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="session")
def render(helm: str) -> Render:
    """``render(values_files=(...), set_values={...}, show_only=None)`` -> manifests.
    Raises :class:`HelmFailed` with helm's message when rendering fails."""
    cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def _render(values_files: Sequence[Path] = (), set_values: dict[str, str] | None = None,
                release: str = "gw", namespace: str = "grenswacht") -> list[dict[str, Any]]:
        key = (tuple(values_files), tuple(sorted((set_values or {}).items())), release, namespace)
        if key not in cache:
            args = ["template", release, str(CHART), "--namespace", namespace,
                    "--kube-version", KUBE_VERSION]
            for values in values_files:
                args += ["-f", str(values)]
            for name, value in (set_values or {}).items():
                args += ["--set-string" if isinstance(value, str) else "--set",
                         f"{name}={value}"]
            done = run_helm(helm, *args)
            if done.returncode != 0:
                raise HelmFailed(done.stderr)
            cache[key] = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
        return [dict(doc) for doc in cache[key]]

    return _render


@pytest.fixture(scope="session")
def default_manifests(render: Render) -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="session")
def production_manifests(render: Render) -> list[dict[str, Any]]:
    return render(values_files=[PRODUCTION_VALUES])


def of_kind(manifests: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] in kinds]


def workloads(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return of_kind(manifests, "Deployment", "DaemonSet", "Job")


def component(manifest: dict[str, Any]) -> str:
    return str(manifest["metadata"]["labels"]["app.kubernetes.io/component"])


def containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return list(manifest["spec"]["template"]["spec"]["containers"])


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}
