"""Settings of the scheduler: the ``[atlas]`` section of ``grenswacht.toml``.

Environment variables use the ``GRENSWACHT_ATLAS__`` prefix, for example
``GRENSWACHT_ATLAS__API_KEY`` or ``GRENSWACHT_ATLAS__API_KEY_FILE``. The key is held as a
:class:`~pydantic.SecretStr`: it shows as ``**********`` in ``repr()``, logs and errors.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from schemas.errors import ConfigError


class SelfHostedSchedule(BaseModel):
    enabled: bool = Field(
        True, description="Publish probe tasks for the inventory's self-hosted vantage sets."
    )
    tick_s: int = Field(
        30, ge=1, le=3600, description="How often the scheduler checks which probe tasks are due."
    )


class ProbeMetadataSettings(BaseModel):
    enabled: bool = Field(
        True,
        description="Fetch coordinates and country of every RIPE Atlas probe that results "
        "name from the probe API (no key needed); off: only jurisdiction.atlas_probe_files.",
    )
    refresh_s: int = Field(
        7 * 86400, ge=3600, description="Fetch a probe's metadata again after this long."
    )
    interval_s: int = Field(
        60, ge=1, le=86400, description="How often probes seen but not yet fetched are fetched."
    )
    batch_size: int = Field(
        500, ge=1, le=500, description="Probe ids per probe API request (id__in)."
    )
    group: str = Field(
        "grenswacht-scheduler", description="Consumer group the scheduler reads topics in."
    )


class ConfirmSettings(BaseModel):
    daily_credits: int = Field(
        1000,
        ge=0,
        description="RIPE Atlas credits per day for confirmation pings (0: none are made).",
    )
    probes_per_location: int = Field(
        3, ge=1, le=10, description="Probes near each location (the claim, the alternative)."
    )
    search_radii_km: list[int] = Field(
        default=[200, 500, 1500],
        description="Radii tried, in order, to find probes near a location.",
    )
    ping_packets: int = Field(3, ge=1, le=16, description="Packets per confirmation ping.")
    ping_credits: int = Field(3, ge=0, description="Credits per ping result (before x one-off).")
    cooldown_s: int = Field(
        7 * 86400, ge=0, description="An address is not pinged again within this time."
    )
    max_concurrent: int = Field(
        5, ge=1, description="Confirmation measurements collected at the same time."
    )
    collect_s: int = Field(
        3600, ge=60, description="How long the results of a confirmation ping are collected."
    )
    interval_s: int = Field(
        60, ge=1, le=3600, description="How often queued confirmation requests are sent."
    )
    queue_max: int = Field(
        1000, ge=1, description="Most confirmation requests kept waiting (oldest dropped)."
    )


class AtlasSettings(BaseModel):
    api_key: SecretStr | None = Field(
        None, description="RIPE Atlas API key (prefer api_key_file or the environment)."
    )
    api_key_file: Path | None = Field(
        None, description="File whose first line is the RIPE Atlas API key."
    )
    base_url: str = Field(
        "https://atlas.ripe.net",
        description="RIPE Atlas REST API base URL (https only; tests point it at the fake).",
    )
    stream_url: str = Field(
        "https://atlas-stream.ripe.net",
        description="RIPE Atlas result streaming base URL (websocket at /stream/).",
    )
    ca_bundle: Path | None = Field(
        None,
        description="CA file to trust instead of the system store (default: $REQUESTS_CA_BUNDLE).",
    )
    inventory: Path | None = Field(
        None, description="Application inventory (apps.toml or apps.csv) to measure."
    )
    tag: str = Field(
        "grenswacht",
        pattern=r"^[a-z0-9][a-z0-9_-]{2,49}$",
        description="Tag on every measurement grenswacht creates (used to reconcile).",
    )
    daily_credit_budget: int = Field(
        1_000_000, ge=0, description="Most RIPE Atlas credits the plan may spend per day."
    )
    max_concurrent_measurements: int = Field(
        100, ge=1, description="RIPE Atlas limit of concurrent measurements per user."
    )
    definitions_per_request: int = Field(
        10, ge=1, le=100, description="Measurement definitions packed into one create request."
    )
    traceroute_credits: int = Field(30, ge=0, description="Credits per traceroute result.")
    dns_credits: int = Field(10, ge=0, description="Credits per DNS result.")
    oneoff_multiplier: int = Field(
        2, ge=1, description="One-off measurements cost this many times more."
    )
    reconcile_interval_s: int = Field(
        3600, ge=60, description="How often the scheduler reconciles measurements with Atlas."
    )
    backfill_overlap_s: int = Field(
        900,
        ge=0,
        description="Backfill re-reads this many seconds before the checkpoint (late uploads).",
    )
    stream_reconnect_max_s: float = Field(
        60.0, gt=0, description="Longest wait between stream reconnect attempts."
    )
    http_timeout_s: float = Field(30.0, gt=0, description="Timeout of one REST request.")
    max_retries: int = Field(5, ge=0, description="Retries of one REST call on 429/5xx.")
    retry_max_s: float = Field(300.0, gt=0, description="Longest single wait between retries.")
    state_file: Path | None = Field(
        None, description="Checkpoint file (default: <data_dir>/atlas-state.json)."
    )
    self_hosted: SelfHostedSchedule = Field(default_factory=SelfHostedSchedule)
    probe_metadata: ProbeMetadataSettings = Field(default_factory=ProbeMetadataSettings)
    confirm: ConfirmSettings = Field(default_factory=ConfirmSettings)

    def resolved_api_key(self) -> SecretStr | None:
        """The key from ``api_key`` or else the first line of ``api_key_file``."""
        if self.api_key is not None and self.api_key.get_secret_value().strip():
            return SecretStr(self.api_key.get_secret_value().strip())
        if self.api_key_file is not None:
            try:
                text = self.api_key_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"atlas.api_key_file {self.api_key_file}: cannot read ({exc.strerror})"
                ) from None
            lines = text.strip().splitlines()
            if not lines or not lines[0].strip():
                raise ConfigError(f"atlas.api_key_file {self.api_key_file} is empty")
            return SecretStr(lines[0].strip())
        return None

    @property
    def has_key(self) -> bool:
        return self.api_key is not None or self.api_key_file is not None
