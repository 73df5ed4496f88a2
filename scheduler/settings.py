"""Settings of the scheduler: the ``[atlas]`` section of ``grenswacht.toml``.

Environment variables use the ``GRENSWACHT_ATLAS__`` prefix, for example
``GRENSWACHT_ATLAS__API_KEY`` or ``GRENSWACHT_ATLAS__API_KEY_FILE``. The key is held as a
:class:`~pydantic.SecretStr`: it shows as ``**********`` in ``repr()``, logs and errors.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from schemas.errors import ConfigError


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
