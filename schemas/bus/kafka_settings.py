"""Settings of the Kafka bus (the ``[kafka]`` table; ``GRENSWACHT_KAFKA__*`` variables).

No kafka-python import here: the model validates and :meth:`KafkaSettings.client_options`
turns it into the keyword arguments kafka-python takes, which only
:mod:`schemas.bus.kafka` passes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseModel):
    """Connection, security and delivery settings for ``kafka://`` buses."""

    model_config = {"extra": "forbid"}

    client_id: str = Field(default="grenswacht", description="Client id sent to the brokers.")
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL protocols only)."
    )
    sasl_plain_username: str | None = Field(default=None, description="SASL user name.")
    sasl_plain_password: SecretStr | None = Field(default=None, description="SASL password.")
    ssl_cafile: Path | None = Field(
        default=None, description="CA bundle (PEM) that signed the brokers."
    )
    ssl_certfile: Path | None = Field(
        default=None, description="Client certificate (PEM), for mTLS."
    )
    ssl_keyfile: Path | None = Field(
        default=None, description="Client private key (PEM), for mTLS."
    )
    ssl_password: SecretStr | None = Field(default=None, description="Password of the client key.")
    ssl_check_hostname: bool = Field(
        default=True, description="Check the broker's name in its cert."
    )
    create_topics: bool = Field(
        default=True, description="Create missing grenswacht topics when a bus is opened."
    )
    replication_factor: int = Field(default=1, ge=1, description="Replication of created topics.")
    partitions: dict[str, int] = Field(
        default_factory=dict,
        description="Partition count per topic name, overriding schemas.topics defaults.",
    )
    connect_timeout_ms: int = Field(
        default=30_000, ge=500, description="Give up reaching any broker after this long."
    )
    request_timeout_ms: int = Field(default=30_000, ge=1000, description="Broker request timeout.")
    delivery_timeout_ms: int = Field(
        default=120_000,
        ge=1000,
        description="Give up on a publish after this long (then BusError).",
    )
    retries: int = Field(
        default=50,
        ge=1,
        description="Producer retries per batch (bounded; idempotence needs >= 1).",
    )
    retry_backoff_ms: int = Field(default=200, ge=0, description="Wait between retries.")
    linger_ms: int = Field(default=5, ge=0, description="Producer batching delay.")
    session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        description="Consumer group session timeout (member declared dead).",
    )
    heartbeat_interval_ms: int = Field(
        default=1_000, ge=100, description="Consumer heartbeat period."
    )
    max_poll_interval_ms: int = Field(
        default=300_000, ge=1000, description="Longest gap between polls before leaving the group."
    )
    client_stall_timeout_ms: int = Field(
        default=120_000,
        ge=2000,
        description="A consumer call (poll, commit, seek) still waiting on kafka-python's "
        "network thread after this long, outside our rebalance listener, is given up: the "
        "poll returns nothing, a commit fails (and a later one covers it). kafka-python "
        "3.0.12 waits for such calls without a timeout (dpkp/kafka-python#3121). More "
        "than request_timeout_ms.",
    )

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl:
            if self.sasl_mechanism is None:
                raise ValueError(
                    f"security_protocol {self.security_protocol} needs sasl_mechanism "
                    "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
                )
            if not self.sasl_plain_username or self.sasl_plain_password is None:
                raise ValueError(
                    f"sasl_mechanism {self.sasl_mechanism} needs sasl_plain_username and "
                    "sasl_plain_password"
                )
        elif self.sasl_mechanism is not None or self.sasl_plain_username:
            raise ValueError(
                "SASL settings are given but security_protocol is "
                f"{self.security_protocol}; use SASL_PLAINTEXT or SASL_SSL"
            )
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        tls_files = (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile)
        if not tls and any(f is not None for f in tls_files):
            raise ValueError(
                f"ssl_* files are given but security_protocol is {self.security_protocol}; "
                "use SSL or SASL_SSL"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (client certificate)")
        for name, path in zip(
            ("ssl_cafile", "ssl_certfile", "ssl_keyfile"), tls_files, strict=True
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {path} is not a readable file")
        if self.delivery_timeout_ms < self.request_timeout_ms + self.linger_ms:
            raise ValueError("delivery_timeout_ms must be at least request_timeout_ms + linger_ms")
        if self.client_stall_timeout_ms <= self.request_timeout_ms:
            raise ValueError("client_stall_timeout_ms must be more than request_timeout_ms")
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        return self

    def partitions_for(self, topic: str, default: int) -> int:
        return self.partitions.get(topic, default)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments common to kafka-python's producer, consumer and admin."""
        options: dict[str, Any] = {
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
            "bootstrap_timeout_ms": self.connect_timeout_ms,
            "retry_backoff_ms": self.retry_backoff_ms,
            "reconnect_backoff_max_ms": 2_000,
        }
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_plain_username
            assert self.sasl_plain_password is not None  # noqa: S101 - validated above
            options["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_check_hostname"] = self.ssl_check_hostname
            if self.ssl_cafile is not None:
                options["ssl_cafile"] = str(self.ssl_cafile)
            if self.ssl_certfile is not None:
                options["ssl_certfile"] = str(self.ssl_certfile)
                options["ssl_keyfile"] = str(self.ssl_keyfile)
            if self.ssl_password is not None:
                options["ssl_password"] = self.ssl_password.get_secret_value()
        return options
