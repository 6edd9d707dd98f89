"""Configuration: `LEADFLOW_*` environment variables and an optional TOML file.

Precedence (highest first): explicit keyword arguments, environment, TOML file,
defaults. With nothing set, every command runs on the embedded default: a Tansu
broker on a free loopback port and chdb under ``./var/warehouse``.
"""
from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from schemas import CONVERSATION_CHANNELS, MARKETING_CHANNELS

DEFAULT_SLA_SECONDS = {"chat": 30.0, "messenger": 300.0, "social": 3600.0, "email": 3600.0}
DEV_IDENTITY_SECRET = "leadflow-dev-secret-change-me"


class ConfigError(ValueError):
    """A configuration that cannot be used (bad file, bad value)."""


class BusinessHours(BaseModel):
    """Hours that count for `frt_business_s`. Default: every hour of every day."""

    model_config = {"frozen": True}
    timezone: str = "UTC"
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)  # Monday = 0
    start_hour: int = Field(0, ge=0, le=24)
    end_hour: int = Field(24, ge=0, le=24)

    @property
    def always(self) -> bool:
        return len(set(self.weekdays)) == 7 and self.start_hour == 0 and self.end_hour == 24


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", env_nested_delimiter="__", frozen=True, extra="forbid")

    # Where things run. None = embedded default.
    kafka_bootstrap: str | None = None
    clickhouse_url: str | None = None
    warehouse_dir: Path = Path("var/warehouse")
    clickhouse_database: str = Field("leadflow", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    topic_prefix: str = "leadflow"
    topic_partitions: int = Field(4, ge=1, le=1024)

    # Contract knobs (events.md / kpis.md).
    reporting_currency: str = "USD"
    rates: dict[str, Decimal] = Field(default_factory=dict)  # currency -> reporting currency multiplier
    extra_marketing_channels: tuple[str, ...] = ()
    extra_conversation_channels: tuple[str, ...] = ()
    lookback_days: int = Field(90, ge=1)
    half_life_days: float = Field(7.0, gt=0)
    sla_seconds: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SLA_SECONDS))
    missed_after_hours: float = Field(24.0, gt=0)
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    # Staffing (contract v1.1 section 3): Erlang C service level target, and the answer
    # target of calls (the other channels use sla_seconds).
    service_level: float = Field(0.8, gt=0, lt=1)
    call_target_seconds: float = Field(20.0, gt=0)

    # Privacy.
    identity_secret: str = DEV_IDENTITY_SECRET
    deadletter_retention_days: int = Field(30, ge=1)

    # Ingest and batching.
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_event_bytes: int = Field(1024 * 1024, ge=256)
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    batch_max_rows: int = Field(20_000, ge=1)
    batch_max_seconds: float = Field(0.5, gt=0)
    # The embedded broker holds every message in memory (~1 KiB per event over its topics) and
    # cannot delete records: a big replay on it runs in segments of this many input lines, each
    # on its own topics, deleted once the warehouse has the segment.
    replay_segment_lines: int = Field(2_000_000, ge=1)

    @field_validator("reporting_currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if len(v) != 3 or not v.isalpha():
            raise ValueError("reporting_currency must be a 3-letter ISO 4217 code")
        return v.upper()

    @field_validator("rates")
    @classmethod
    def _rates(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        out = {}
        for k, rate in v.items():
            if len(k) != 3 or not k.isalpha() or rate <= 0:
                raise ValueError(f"rate {k}={rate}: need a 3-letter currency and a positive rate")
            out[k.upper()] = rate
        return out

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def warehouse_dsn(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{self.warehouse_dir.resolve()}"

    @property
    def marketing_channels(self) -> tuple[str, ...]:
        return MARKETING_CHANNELS + tuple(c for c in self.extra_marketing_channels if c not in MARKETING_CHANNELS)

    @property
    def conversation_channels(self) -> tuple[str, ...]:
        return CONVERSATION_CHANNELS + tuple(
            c for c in self.extra_conversation_channels if c not in CONVERSATION_CHANNELS
        )

    def sla_for(self, channel: str) -> float | None:
        return self.sla_seconds.get(channel)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from an optional TOML file, the environment and overrides.

    Raises ConfigError with one readable line on any problem.
    """
    from pydantic import ValidationError

    data: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        data = data.get("leadflow", data)
    # Environment beats the file: drop file keys that the environment sets.
    import os

    env_keys = {k[len("LEADFLOW_"):].lower().split("__")[0] for k in os.environ if k.startswith("LEADFLOW_")}
    merged = {k: v for k, v in data.items() if k not in env_keys}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        raise ConfigError(f"bad configuration: {loc}: {err['msg']}") from None
