"""Clients built from settings: the one place the worker and the CLI get their Redis clients and the
alert channels' clients (ClickHouse's is ``UsageStore.of``). Credentials come from the environment
through the settings."""

from __future__ import annotations

from typing import Any

import httpx

from alerting.channels import Senders, SmtpConfig, TwilioConfig
from enforcement.connect import redis_async, redis_sync
from schemas.settings import RedisSettings, Settings
from schemas.webhook_targets import allowed_hosts

__all__ = ["async_redis", "senders", "smtp_config", "sync_redis"]


def sync_redis(settings: RedisSettings, **options: Any) -> Any:
    """A ``redis.Redis`` (or ``RedisCluster``) for these settings."""
    return redis_sync(settings.url, password=settings.password_text(), cluster=settings.cluster, **options)


def async_redis(settings: RedisSettings, **options: Any) -> Any:
    """A ``redis.asyncio.Redis`` (or its ``RedisCluster``) for these settings."""
    return redis_async(settings.url, password=settings.password_text(), cluster=settings.cluster, **options)


def smtp_config(settings: Settings) -> SmtpConfig | None:
    """The SMTP server that alerts and reports go out through; None when none is set."""
    alerts = settings.alerts
    if not alerts.smtp_host:
        return None
    return SmtpConfig(
        alerts.smtp_host,
        alerts.smtp_port,
        alerts.smtp_security,
        alerts.smtp_username,
        alerts.smtp_password.get_secret_value(),
        alerts.smtp_from,
        alerts.http_timeout_s,
        alerts.smtp_verify,
    )


def senders(settings: Settings) -> Senders:
    """The alert channels' clients, from settings (credentials come from the environment)."""
    alerts = settings.alerts
    smtp = smtp_config(settings)
    twilio = None
    if alerts.twilio_account_sid:
        twilio = TwilioConfig(
            alerts.twilio_account_sid,
            alerts.twilio_auth_token.get_secret_value(),
            alerts.twilio_from,
            alerts.twilio_base_url or None,
        )
    http = httpx.AsyncClient(timeout=alerts.http_timeout_s, headers={"User-Agent": "spendstream"})
    return Senders(http, smtp, twilio, alerts.pagerduty_events_url, allowed_hosts(alerts.webhook_allow_hosts))
