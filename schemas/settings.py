"""Process settings, read once from the environment and validated at start.

Every variable is prefixed ``SPENDSTREAM_`` and nested with ``__``, for
example ``SPENDSTREAM_KAFKA__BOOTSTRAP=broker:9092`` or
``SPENDSTREAM_CLICKHOUSE__PASSWORD=...``. Secrets are ``SecretStr``: they
print as ``**********`` and never reach a log.

Not re-exported from :mod:`schemas`: the cap client that proxies embed does
not need pydantic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "AlertSettings",
    "ClickHouseSettings",
    "ConsoleSettings",
    "DecisionSettings",
    "InsightSettings",
    "KafkaSettings",
    "LiteLLMSettings",
    "RedisSettings",
    "Settings",
    "StackSettings",
    "StreamSettings",
]

Port = int


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "spendstream"


def _default_cache() -> Path:
    return Path.home() / ".cache" / "spendstream"


class KafkaSettings(BaseModel):
    bootstrap: str = Field("127.0.0.1:9092", description="host:port[,host:port...] of the brokers")
    topic_prefix: str = Field("", description="prefix for every topic name, for several deployments on one cluster")
    compression: str = Field(
        "lz4",
        pattern=r"^(none|gzip|snappy|lz4|zstd)$",
        description="how usage producers (replay, the LiteLLM hook) compress their batches; the worker reads all five",
    )

    @field_validator("bootstrap")
    @classmethod
    def _has_port(cls, value: str) -> str:
        for part in value.split(","):
            host, _, port = part.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port, got {part!r}")
        return value


class RedisSettings(BaseModel):
    """Where the caps' state lives (every client is made from these by ``enforcement.redis_clients``)."""

    url: str = Field("redis://127.0.0.1:6379/0", description="redis:// or rediss:// URL")
    password: SecretStr | None = None
    key_prefix: str = Field("ss", description="prefix of every key; tests isolate by it")
    cluster: bool = Field(False, description="the URL names a node of a Redis Cluster")

    def password_text(self) -> str | None:
        """The password to hand a client (the one place the secret is unwrapped)."""
        return self.password.get_secret_value() if self.password else None

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class ClickHouseSettings(BaseModel):
    host: str = "127.0.0.1"
    port: Port = Field(8123, ge=1, le=65535)
    username: str = "default"
    password: SecretStr = SecretStr("")
    database: str = Field("spendstream", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    secure: bool = False
    cluster: str = Field(
        "",
        pattern=r"^([A-Za-z_][A-Za-z0-9_]{0,63})?$",
        description="a sharded, replicated ClickHouse: the cluster's name in its remote_servers (each table "
        "replicated on every shard with a Distributed table in front, docs/capacity.md); empty: one server",
    )


class DecisionSettings(BaseModel):
    """The decision HTTP service (``spendstream decision serve``)."""

    host: str = "127.0.0.1"
    port: Port = Field(8400, ge=1, le=65535)
    keys_file: Path | None = Field(
        None, description="the proxy keys (hashed, each bound to its orgs and rights): enforcement/access.py"
    )
    reservation_ttl_s: float = Field(300.0, ge=1, le=3600)
    on_redis_unavailable: str = Field("closed", pattern=r"^(closed|open)$")
    unknown_orgs: str = Field(
        "admit",
        pattern=r"^(admit|deny)$",
        description="an org with no entry in config.v1 (Redis's state whole): admit (no budget applies, its spend "
        "is counted, an unconfigured_org alert a day) or deny",
    )
    timeout_s: float = Field(0.25, gt=0, le=10)
    max_past_s: float = Field(86_400.0, ge=0, description="how old a usage event posted to /v1/usage may be")
    max_future_s: float = Field(300.0, ge=0, description="how far ahead of this clock a usage event may be")
    catalogue_refresh_s: float = Field(60.0, gt=0, description="how often prices are re-read from config.v1")


class AlertSettings(BaseModel):
    """Delivery of alerts: provider credentials (from the environment only), retries, the dashboard link."""

    console_url: str = Field(
        "http://127.0.0.1:8700",
        description="the console's public base URL: every alert links to the console page that shows its scope "
        "and period",
    )
    webhook_allow_hosts: str = Field(
        "",
        description="comma-separated hosts (names or addresses) that Slack and Teams webhook URLs may name although "
        "they are loopback, private or local; empty: none (an org's webhook never reaches an internal service)",
    )
    smtp_host: str = Field("", description="SMTP server; empty disables email")
    smtp_port: Port = Field(587, ge=1, le=65535)
    smtp_security: str = Field("starttls", pattern=r"^(none|starttls|tls)$")
    smtp_verify: bool = Field(True, description="verify the server's TLS certificate")
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = "spendstream@localhost"
    twilio_account_sid: str = Field("", description="empty disables SMS")
    twilio_auth_token: SecretStr = SecretStr("")
    twilio_from: str = ""
    twilio_base_url: str = Field("", description="override of https://api.twilio.com (a regional or local endpoint)")
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    http_timeout_s: float = Field(10.0, gt=0, le=120)
    max_attempts: int = Field(8, ge=1, le=100)
    backoff_base_s: float = Field(0.5, gt=0, le=60)
    backoff_max_s: float = Field(60.0, gt=0, le=3600)
    ledger_days: int = Field(62, ge=1, le=400, description="how long a delivery is remembered (dedup)")
    resolve_check_s: float = Field(15.0, gt=0, le=3600, description="how often open PagerDuty incidents are checked")


class InsightSettings(BaseModel):
    """Forecasts and spike detection in the worker (the leader runs them)."""

    enabled: bool = True
    spike_bucket_s: int = Field(60, ge=1, le=3600, description="the spike detector's bucket")
    spike_lag_s: float = Field(5.0, ge=0, le=600, description="how long after a bucket closes it is scored")
    spike_ratio: float = Field(5.0, gt=1, description="a spike is at least this many times the expected cost")
    spike_k: float = Field(6.0, gt=0, description="and this many deviations above it")
    spike_min_usd: str = Field("0.01", description="and at least this much (USD) in the bucket")
    spike_warmup: int = Field(10, ge=1, le=10_000, description="buckets an entity is watched before it can spike")
    spike_hourly: bool = Field(
        True, description="also watch hours, against the same hour of earlier weekdays (or of days off)"
    )
    spike_hourly_warmup: int = Field(
        4, ge=1, le=365, description="days an hour is watched (as a weekday or a day off) before it can spike"
    )
    spike_hourly_ratio: float = Field(2.2, gt=1, description="an hourly spike is at least this many times expected")
    spike_hourly_k: float = Field(4.0, gt=0, description="and this many deviations above it")
    spike_relearn_days: int = Field(
        14, ge=0, le=90, description="days of hours a new hourly detector learns from ClickHouse before it judges"
    )
    forecast_every_s: float = Field(300.0, gt=0, le=86_400)
    history_days: int = Field(120, ge=7, le=1000, description="days of history a new scope learns from")
    alert_probability: float = Field(0.8, gt=0, le=1, description="projected_exceed fires at this chance")
    max_entities: int = Field(100_000, ge=1)
    checkpoint_every_s: float = Field(
        30.0, ge=0, le=3600, description="how often the spike state is saved (forecast runs always save)"
    )


class StreamSettings(BaseModel):
    """What the worker accepts beyond the event schema; anything else goes to the dead-letter topic."""

    max_event_bytes: int = Field(65_536, ge=1024, le=900_000, description="the largest usage record")
    max_future_s: float = Field(3600.0, ge=0, description="how far ahead of the worker's clock occurred_at may be")
    max_age_days: int = Field(400, ge=1, description="how old an event may be")
    max_buffered_rows: int = Field(
        500_000,
        ge=1000,
        description="rows applied to Redis and awaiting ClickHouse; past it Redis waits too (backpressure): while "
        "ClickHouse is down caps keep seeing new spend until this many rows are held (about 1 KiB a row)",
    )


class LiteLLMSettings(BaseModel):
    """The LiteLLM proxy hook: who a request is, when the proxy's key does not say."""

    default_org: str = Field(
        "", description="the org of keys that carry none (opt-in, for a single-org deployment); empty: refused"
    )
    trust_request_user: bool = Field(
        False, description="take the request body's `user` as the user when the key has none (callers choose it)"
    )
    linger_ms: int = Field(
        25,
        ge=0,
        le=1000,
        description="how long the hook's producer gathers usage events into one Kafka request: at 125 requests/s "
        "its threads spent 126 us of CPU an event at 5 ms, 52 at 25 ms, 34 at 50 ms; an event reaches Kafka "
        "at most this much later (its reservation holds the room meanwhile)",
    )


class StackSettings(BaseModel):
    """Where the local services of one machine listen and keep their files."""

    home: Path = Field(default_factory=_default_home, description="data, logs and pid files")
    cache: Path = Field(default_factory=_default_cache, description="downloaded Kafka jars")
    kafka_version: str = Field("4.0.2", pattern=r"^4\.0\.\d+$")
    kafka_port: Port = Field(9092, ge=1, le=65535)
    kafka_controller_port: Port = Field(9093, ge=1, le=65535)
    kafka_heap: str = Field("1g", pattern=r"^\d+[mg]$")
    kafka_brokers: Literal[1, 3] = Field(
        1,
        description="1: one broker that is its own controller; 3: a KRaft cluster of three on this machine, "
        "node i on kafka_port + 2(i-1) (controller kafka_controller_port + 2(i-1)), topics replicated three "
        "times with min.insync.replicas 2",
    )
    redis_port: Port = Field(6379, ge=1, le=65535)
    clickhouse_port: Port = Field(8123, ge=1, le=65535)
    start_timeout_s: float = Field(90.0, gt=0)


class ConsoleSettings(BaseModel):
    """The admin console (``spendstream console serve``): Admin > Billing and the admin API."""

    host: str = "127.0.0.1"
    port: Port = Field(8700, ge=1, le=65535)
    database: Path | None = Field(
        None,
        description="SQLite file of console users, sessions, API tokens and the audit trail; "
        "default: console.db in the stack's home",
    )
    secure_cookies: bool | None = Field(
        None,
        description="mark the session cookie Secure; default: on unless the console is served on loopback "
        "(plain HTTP on 127.0.0.1 or ::1)",
    )
    hsts: bool = Field(False, description="send Strict-Transport-Security (set it when the console is behind TLS)")
    trusted_proxies: str = Field(
        "",
        description="comma-separated addresses (or CIDR ranges) of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: no proxy is, and the client's own address is used",
    )
    metrics_port: Port = Field(9468, ge=0, le=65535, description="Prometheus /metrics on a port of its own; 0: none")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, le=1 << 30, description="a request body larger than this is refused (413) unread"
    )
    config_max_age_s: float = Field(2.0, gt=0, le=3600, description="how stale the budgets it shows may be")
    sign_in_attempts: int = Field(5, ge=1, le=1000, description="failed sign-ins per user and address ...")
    sign_in_attempts_per_user: int = Field(20, ge=1, le=10_000, description="... and per user from any address ...")
    sign_in_window_s: float = Field(300.0, gt=0, description="... within this many seconds, before it waits")

    def cookies_secure(self) -> bool:
        """Whether the session cookie is marked Secure: as set, else unless served on loopback."""
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.host not in ("127.0.0.1", "::1", "localhost")

    public_url: str = Field(
        "",
        description="the console's address as browsers reach it (https://billing.example.com), from which single "
        "sign-on's redirect URI is made; default: http://<host>:<port>",
    )
    oidc_allow_hosts: str = Field(
        "",
        description="comma-separated hosts an org's identity provider may be on although internal (a provider on "
        "the company network, a test provider on loopback); they may also use plain http",
    )
    oidc_clock_skew_s: int = Field(60, ge=0, le=300, description="how far an ID token's times may be off this clock")
    oidc_jwks_refresh_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="on an unknown key id, at most one fetch of the provider's keys per this many seconds",
    )

    def public(self) -> str:
        """Where browsers reach the console: ``public_url``, else its own host and port."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return self.public_url.rstrip("/") or f"http://{host}:{self.port}"

    export_settle_s: float = Field(
        30.0, ge=0, le=3600, description="the export API hands out rows ClickHouse stored at least this long ago"
    )
    export_max_rows: int = Field(1_000_000, ge=1, le=50_000_000, description="the most rows of one export page")


class ReportSettings(BaseModel):
    """The report scheduler (``spendstream reports scheduler``): saved templates run on their schedule."""

    poll_s: float = Field(30.0, gt=0, le=3600, description="how often it looks for a template that is due")
    lease_s: float = Field(900.0, ge=1, le=86_400, description="how long a worker holds a run before another may")
    max_attempts: int = Field(3, ge=1, le=20, description="failed attempts of one run before it is given up")
    metrics_port: Port = Field(9467, ge=0, le=65535, description="Prometheus /metrics; 0 picks a free port")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPENDSTREAM_", env_nested_delimiter="__", extra="ignore", frozen=True)

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    stack: StackSettings = StackSettings()
    decision: DecisionSettings = DecisionSettings()
    alerts: AlertSettings = AlertSettings()
    insights: InsightSettings = InsightSettings()
    stream: StreamSettings = StreamSettings()
    litellm: LiteLLMSettings = LiteLLMSettings()
    console: ConsoleSettings = ConsoleSettings()
    reports: ReportSettings = ReportSettings()
    metrics_port: Port = Field(9400, ge=0, le=65535, description="Prometheus /metrics; 0 picks a free port")
