"""The ``[alerts]`` settings section (used by ``grenswacht/settings.py``).

Environment variables use the ``GRENSWACHT_ALERTS__`` prefix, for example
``GRENSWACHT_ALERTS__WEBHOOK_URL`` and ``GRENSWACHT_ALERTS__WEBHOOK_SECRET_FILE``.
``docs/alerts.md`` explains every key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from schemas.errors import ConfigError


class AlertSettings(BaseModel):
    # -- what is a change --------------------------------------------------------------
    granularity: Literal["bloc", "country"] = Field(
        "bloc",
        description="Jurisdictions compared as blocs (EU = every EU/EEA country, US, and "
        "every other country by itself) or as single countries.",
    )
    transit_legal: bool = Field(
        True, description="Count the legal jurisdiction of transit hops, not only of the "
        "destination's operator.")
    learn_results: int = Field(
        16, ge=1,
        description="The first results of every series (vantage point, measurement, "
        "destination) form the baseline without alerting (16 = one RIPE Atlas Paris-ID cycle).",
    )
    forget_after_s: float = Field(
        7 * 24 * 3600.0, gt=0,
        description="A baseline jurisdiction not seen for this long is dropped (no alert).",
    )
    home_only: bool = Field(
        True, description="Watch only paths from home vantage points (verdicts.home_countries, "
        "self-hosted); false: reference probes too, under keys of their own country.")
    alert_on_disappearance: bool = Field(
        True, description="Alert when a jurisdiction of the baseline is no longer seen by any "
        "series of the key for learn_results consecutive results (a full Paris-ID cycle) "
        "and at least hold_down_s.")
    # -- confirmation ----------------------------------------------------------------
    confirm_vantage_points: int = Field(
        2, ge=1, description="A new jurisdiction is confirmed when this many vantage points "
        "saw it ...")
    confirm_vantage_window_s: float = Field(
        3600.0, gt=0, description="... within this many seconds of each other (one round) ...")
    confirm_rounds: int = Field(
        2, ge=1, description="... or one series saw it in this many consecutive results ...")
    confirm_flow_ids: int = Field(
        2, ge=1, description="... or it was seen with this many different flow ids (paris_id).")
    confirm_window_s: float = Field(
        6 * 3600.0, gt=0, description="An unconfirmed sighting is forgotten after this long.")
    # -- resolution and damping -----------------------------------------------------------
    resolve_rounds: int = Field(
        2, ge=1, description="A firing alert resolves when every series that saw the change "
        "returned this many results without it ...")
    hold_down_s: float = Field(
        1800.0, ge=0, description="... and the change was last seen at least this long ago; "
        "a change that comes back within this time after resolving re-opens the same alert.")
    stale_series_s: float = Field(
        24 * 3600.0, gt=0, description="A series silent for this long no longer holds an alert "
        "open.")
    # -- delivery ------------------------------------------------------------------------
    webhook_url: str = Field("", description="Generic JSON webhook (HMAC-SHA256 signed).")
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC secret of the webhook (prefer webhook_secret_file).")
    webhook_secret_file: Path | None = Field(
        None, description="File whose first line is the webhook HMAC secret.")
    apprise_urls: list[str] = Field(
        default_factory=list,
        description="apprise URLs (slack://, workflows:// for Microsoft Teams, matrix://, "
        "mailto://, json:// ...).")
    alertmanager_url: str = Field(
        "", description="Prometheus Alertmanager base URL (alerts go to /api/v2/alerts).")
    alertmanager_resend_s: float = Field(
        60.0, gt=0, description="Firing alerts are re-sent to Alertmanager this often.")
    alertmanager_labels: dict[str, str] = Field(
        default_factory=dict, description="Extra labels on every Alertmanager alert.")
    http_timeout_s: float = Field(10.0, gt=0, description="Timeout of one delivery request.")
    retry_initial_s: float = Field(1.0, gt=0, description="First wait after a failed delivery.")
    retry_max_s: float = Field(300.0, gt=0, description="Longest wait between delivery retries.")
    dispatch_interval_s: float = Field(
        1.0, gt=0, description="How often pending deliveries are looked at.")
    # -- consumer ------------------------------------------------------------------------
    group: str = Field("grenswacht-alerts", description="Consumer group on the verdicts topic.")
    batch_size: int = Field(200, ge=1, description="Verdict messages per detection batch.")
    unmapped_targets: bool = Field(
        True, description="A measured target that belongs to no application in the "
        "inventory is watched as an application of its own (named after the target).")
    severity: dict[str, str] = Field(
        default_factory=lambda: {
            "critical": "critical", "high": "high", "normal": "warning", "low": "info"},
        description="Alert severity per application criticality.",
    )

    def resolved_webhook_secret(self) -> str:
        """The webhook secret from ``webhook_secret`` or the first line of the file."""
        if self.webhook_secret is not None and self.webhook_secret.get_secret_value().strip():
            return self.webhook_secret.get_secret_value().strip()
        if self.webhook_secret_file is not None:
            try:
                lines = self.webhook_secret_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(
                    f"alerts.webhook_secret_file {self.webhook_secret_file}: {exc}") from exc
            if lines and lines[0].strip():
                return lines[0].strip()
        if self.webhook_url:
            raise ConfigError("alerts.webhook_url is set but no webhook_secret(_file) is")
        return ""

    @property
    def channels(self) -> list[str]:
        """Names of the configured delivery channels."""
        names = []
        if self.webhook_url:
            names.append("webhook")
        names.extend(f"apprise:{i}" for i in range(len(self.apprise_urls)))
        if self.alertmanager_url:
            names.append("alertmanager")
        return names
