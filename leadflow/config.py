"""Configuration: `LEADFLOW_*` environment variables and an optional TOML file.

Precedence (highest first): explicit keyword arguments, environment, TOML file,
defaults. With nothing set, every command runs on the embedded default: a Tansu
broker on a free loopback port and chdb under ``./var/warehouse``.
"""
from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
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


class SourceSettings(BaseModel):
    """One `[sources.ADAPTER]` table: what a source adapter needs (docs/sources.md)."""

    model_config = {"frozen": True, "extra": "forbid"}
    secret: str | None = None        # signing secret, auth token, google_key or basic-auth password
    public_url: str | None = None    # the URL the vendor signs (twilio-voice; hubspot-deals behind a proxy)
    username: str | None = None      # basic-auth user name (pipedrive-deals)
    api_url: str | None = None       # vendor API base (meta-lead-ads: Graph API, hubspot-deals: CRM API)
    token: str | None = None         # vendor API token (page token, private-app token)
    verify_token: str | None = None  # meta-lead-ads: the subscription check's hub.verify_token
    channel: str | None = None       # default marketing / conversation channel of the mapped events
    campaign_id: str | None = None   # default campaign_id
    source_name: str | None = None   # the events' `source` (default: the adapter's name)
    operator_id: str | None = None   # twilio-voice: who answered (Twilio's callback does not say)
    timezone: str | None = None      # asterisk-cdr: the PBX's local time zone (--timezone wins)
    won_stages: tuple[str, ...] = ("closedwon",)    # hubspot-deals: deal stages that are a win
    lost_stages: tuple[str, ...] = ("closedlost",)  # hubspot-deals: deal stages that are a loss
    max_age_seconds: float = Field(300.0, gt=0)     # signed timestamps older than this are refused

    def __repr__(self) -> str:  # never print the secrets
        return f"SourceSettings(api_url={self.api_url!r}, public_url={self.public_url!r})"

    __str__ = __repr__


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", env_nested_delimiter="__", frozen=True, extra="forbid")

    # Where things run. None = embedded default.
    kafka_bootstrap: str | None = None
    clickhouse_url: str | None = None
    warehouse_dir: Path = Path("var/warehouse")
    clickhouse_database: str = Field("leadflow", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    topic_prefix: str = "leadflow"
    topic_partitions: int = Field(4, ge=1, le=1024)
    # Replicas of each topic leadflow creates. None: 3 against Kafka, 1 on the embedded broker.
    topic_replication_factor: int | None = Field(None, ge=1, le=32)
    # Where replay, run and `simulate --live` process what they publish: "here" (every stage in
    # the process), "workers" (only publish; `leadflow worker` processes, and the command waits
    # for them), "auto": workers when both LEADFLOW_KAFKA_BOOTSTRAP and LEADFLOW_CLICKHOUSE_URL are
    # set (a chdb warehouse opens in one process only, so no worker could share it), else here.
    processing: Literal["auto", "here", "workers"] = "auto"

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
    max_events_per_request: int = Field(2_500, ge=1)
    http_header_timeout_s: float = Field(10.0, gt=0)  # a connection must send its headers within this
    http_body_timeout_s: float = Field(30.0, gt=0)  # ... and its whole body within this (else 408)
    produce_timeout_s: float = Field(10.0, gt=0)  # the broker must acknowledge a request's events within this
    # how long ingest's record batches wait for more records: requests produced together already share
    # a round trip (GroupSender), so each ms here is a ms on every request (two processes here, 5 ms:
    # 1,418-1,761 requests/s; 1 ms: 1,669-2,117, median 1,938; README "HTTP ingest")
    ingest_linger_ms: int = Field(1, ge=0, le=1000)
    # Write keys (`leadflow keys`): ingest keeps them in memory and reloads them this often.
    keys_refresh_s: float = Field(2.0, gt=0)
    ingest_processes: int = Field(1, ge=1, le=64)  # `serve --ingest-only`: processes on the port (--processes)
    key_default_rate: float = Field(1_000.0, gt=0)  # events/s of a key created without --rate
    batch_max_rows: int = Field(20_000, ge=1)
    # KPI rollups (issue 18, services/rollup/): the rollup stage and the announcements it needs. Off by
    # default until its refresh is cheap enough: with it, the pipeline runs at ~4k events/s instead of ~14k
    rollups: bool = False
    # the share of the time the rollup stage may spend refreshing: after a batch of t seconds it waits
    # t * (1 / duty - 1), so the other stages keep the rest of the warehouse (chdb runs one statement
    # at a time) and the rollups follow a few seconds behind the facts under load
    rollup_duty: float = Field(0.25, gt=0, le=1)
    batch_max_seconds: float = Field(0.5, gt=0)
    # The embedded broker holds every message in memory (~1 KiB per event over its topics) and
    # cannot delete records: a big replay on it runs in segments of this many input lines, each
    # on its own topics, deleted once the warehouse has the segment.
    replay_segment_lines: int = Field(2_000_000, ge=1)

    # Source adapters (services/ingest/sources): one table per adapter, `[sources.ADAPTER]`.
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    # Stage runner (leadflow/stream.py): transient errors (warehouse or broker unreachable,
    # timeouts, failed commits) are retried with exponential backoff and full jitter, from the
    # last commit, for up to stage_retry_seconds in a row; then the stage gives up and the
    # process exits non-zero. More than stage_max_poison_per_batch records of one batch that
    # fail for a permanent reason stop the stage instead of going to the dead-letter topic.
    stage_retry_seconds: float = Field(300.0, gt=0)
    stage_backoff_initial_seconds: float = Field(0.2, gt=0)
    stage_backoff_max_seconds: float = Field(15.0, gt=0)
    stage_max_poison_per_batch: int = Field(100, ge=1)
    # One identity writer: an enrich stage that shares its warehouse holds a lease there
    # (leadflow/lease.py) for this long, renewed every third of it; a second one stands by.
    # lease_settle_seconds: how long a claim waits for concurrent claims to become visible.
    enrich_lease_seconds: float = Field(30.0, gt=0)
    lease_settle_seconds: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _workers_need_a_shared_broker(self) -> "Settings":
        if self.processing == "workers" and not self.kafka_bootstrap:
            raise ValueError("processing = workers needs a shared broker: set LEADFLOW_KAFKA_BOOTSTRAP "
                             "(the embedded broker lives for one command)")
        return self

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
    def replication_factor(self) -> int:
        if self.topic_replication_factor is not None:
            return self.topic_replication_factor
        return 1 if self.embedded_broker else 3

    @property
    def processing_by_workers(self) -> bool:
        """replay / run / simulate --live only publish and wait for `leadflow worker` processes."""
        if self.processing == "auto":
            return bool(self.kafka_bootstrap and self.clickhouse_url)
        return self.processing == "workers"

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
        if "leadflow" in data:  # `[sources.X]` tables may sit beside a `[leadflow]` table
            data = {**({"sources": data["sources"]} if "sources" in data else {}), **data["leadflow"]}
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
