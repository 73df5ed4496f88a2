"""All settings, one table: a TOML file, overridden by ``GRENSWACHT_*`` environment variables.

Where the file is: ``--config FILE``, else ``$GRENSWACHT_CONFIG``, else
``$XDG_CONFIG_HOME/grenswacht/grenswacht.toml`` (``~/.config/...``) if it exists.
Nested keys use ``__`` in environment variables: ``GRENSWACHT_INGEST__BATCH_SIZE=2000``.
``docs/settings.md`` documents every key; ``tests/test_docs.py`` checks it does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from consumers.alerts.settings import AlertSettings
from consumers.analysis_settings import AnalysisSettings
from consumers.enrich.settings import JurisdictionSettings
from consumers.home import VerdictSettings
from grenswacht.files import ReadLimits
from grenswacht.health import MetricsSettings
from probes.settings import ProbeSettings
from scheduler.settings import AtlasSettings
from schemas.bus.kafka_settings import KafkaSettings
from schemas.topics import MAX_MESSAGE_BYTES


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/grenswacht` (`~/.local/share/grenswacht` when XDG_DATA_HOME is unset)"""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "grenswacht"


def default_config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "grenswacht" / "grenswacht.toml"


class IngestSettings(BaseModel):
    batch_size: int = Field(5000, ge=1, description="Results per ClickHouse insert (sink flush).")
    flush_interval_s: float = Field(
        1.0, gt=0, description="Flush a partial batch after this many seconds."
    )
    group: str = Field("grenswacht-ingest", description="Consumer group of the ingest consumer.")
    retry_max_s: float = Field(
        30.0, gt=0, description="Longest backoff between retries when storage is unavailable."
    )
    batch_max_bytes: int = Field(
        16 * 1024 * 1024, ge=1_000_000,
        description="Flush a batch once its messages hold this many bytes (bounds memory).",
    )
    max_line_bytes: int = Field(
        MAX_MESSAGE_BYTES, ge=1024, le=MAX_MESSAGE_BYTES,
        description="Longest line (or JSON array element) of a result file; a longer one "
                    "becomes a dead letter with its first 64 KiB, size and sha256.",
    )
    max_file_bytes: int = Field(
        64 * 1024**3, ge=1024,
        description="Most bytes read (decompressed) from one file; beyond: a dead letter "
                    "and the rest of that file is not read.",
    )
    max_gzip_ratio: float = Field(
        1000.0, gt=1,
        description="Largest decompressed/compressed ratio of a .gz file (after its first "
                    "256 MiB); beyond it the file is a gzip bomb: a dead letter, rest unread.",
    )

    def consumer_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`consumers.ingest.IngestConsumer`."""
        return {"group": self.group, "batch_size": self.batch_size,
                "batch_max_bytes": self.batch_max_bytes,
                "flush_interval_s": self.flush_interval_s, "retry_max_s": self.retry_max_s}

    def read_limits(self) -> ReadLimits:
        return ReadLimits(self.max_line_bytes, self.max_file_bytes, self.max_gzip_ratio)


class ServerSettings(BaseModel):
    """The HTTP endpoint of ``grenswacht run`` (docs/security.md)."""

    host: str = Field("127.0.0.1", description="Address the endpoint listens on. Anything but "
                      "a loopback address needs server.token or server.token_file.")
    port: int = Field(8765, ge=0, le=65535, description="Port of the endpoint (0: any free).")
    max_rows: int = Field(100_000, ge=1, description="Most rows one SQL request returns.")
    token: SecretStr | None = Field(
        None, description="Bearer token of the endpoint (env GRENSWACHT_SERVER__TOKEN; at least "
        "16 characters). Empty: server.token_file, else <data_dir>/server.token, generated at "
        "the first start.")
    token_file: Path | None = Field(
        None, description="File holding the bearer token (e.g. a mounted Kubernetes Secret).")
    reads_need_token: bool = Field(
        False, description="Require the token for reads on loopback too (set it behind a "
        "reverse proxy: the endpoint then sees the proxy, not the user). Always on for a "
        "non-loopback address.")
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Host names (Host header, optional :port) the "
        "endpoint answers besides the loopback names and its own bind address; e.g. the name "
        "of the reverse proxy in front of it.")
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Largest request body "
                                "of POST /ingest (bytes actually read).")
    max_small_body_bytes: int = Field(1024 * 1024, ge=1024, description="Largest request body "
                                      "of the other routes (SQL, acknowledge, forms).")
    body_timeout_s: float = Field(60.0, gt=0, description="Longest a client may take to send "
                                  "a request body.")
    header_timeout_s: float = Field(10.0, gt=0, description="Longest a connection may stay "
                                    "open without sending a complete request.")
    keep_alive_s: float = Field(5.0, gt=0, description="Idle keep-alive connections are "
                                "closed after this many seconds.")
    max_connections: int = Field(128, ge=1, description="Open connections at most; beyond it "
                                 "requests get 503.")
    max_concurrent_requests: int = Field(16, ge=1, description="Requests processed at once; "
                                         "beyond it requests get 503.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GRENSWACHT_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded store lives (chdb) and run state is kept.",
    )
    storage: str = Field(
        "", description="ClickHouse DSN; empty means chdb:///<data_dir>/clickhouse."
    )
    bus: str = Field("memory://grenswacht", description="memory://NAME or kafka://host:port,...")
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    atlas: AtlasSettings = Field(default_factory=AtlasSettings)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    jurisdiction: JurisdictionSettings = Field(default_factory=JurisdictionSettings)
    verdicts: VerdictSettings = Field(default_factory=VerdictSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @property
    def storage_dsn(self) -> str:
        return self.storage or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _CONFIG_FILE.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


_CONFIG_FILE: dict[str, Path | None] = {"path": None}


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``config`` (or the default places) and the environment."""
    from pydantic import ValidationError

    from schemas.errors import ConfigError

    path = config or (Path(os.environ["GRENSWACHT_CONFIG"]) if "GRENSWACHT_CONFIG" in os.environ
                      else None)
    if path is None and default_config_file().exists():
        path = default_config_file()
    if path is not None and not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    _CONFIG_FILE["path"] = path
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings{where}: {problems}") from exc
    except Exception as exc:  # tomllib errors carry line numbers
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
