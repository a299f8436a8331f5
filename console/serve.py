"""``spendstream console serve``: the console with its parts built from settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette

from bus.config_topic import ConfigCache
from bus.topics import Topics
from console.access_store import AccessStore
from console.actions import Actions
from console.app import create_app
from console.export_api import Exports
from console.metrics import ConsoleMetrics
from console.oidc import OidcClient
from console.readmodels import Reader
from console.sso_pages import SsoPages
from console.sso_store import SsoStore
from console.throttle import SignInThrottle
from console.web import Web
from enforcement.keys import KeyLayout
from enforcement.redis_clients import sync_redis
from schemas.settings import Settings
from schemas.webhook_targets import allowed_hosts
from sinks.queries import ClickHouseReader
from sinks.usage_store import UsageStore

__all__ = ["access_store", "app_from_settings"]

log = logging.getLogger("spendstream.console")


def access_store(settings: Settings) -> AccessStore:
    """The console's users, sessions, tokens and audit: ``console.database``, or console.db in the stack's home."""
    return AccessStore(settings.console.database or Path(settings.stack.home) / "console.db")


def _vega_bundle() -> str:
    import vl_convert  # noqa: PLC0415 - its first bundle takes a second: only when a page asks

    return str(vl_convert.javascript_bundle("window.vegaEmbed = vegaEmbed;"))


def app_from_settings(
    settings: Settings,
    metrics: ConsoleMetrics | None = None,
    store_wrapper: Callable[[UsageStore], ClickHouseReader] = lambda store: store,
) -> Starlette:
    """The console; ``store_wrapper`` lets a benchmark time every ClickHouse query."""
    config = ConfigCache.of(
        settings.kafka.bootstrap, Topics(settings.kafka.topic_prefix), settings.console.config_max_age_s
    )
    config.follow()
    store = UsageStore.of(settings.clickhouse)
    store.migrate()
    access = access_store(settings)
    redis = sync_redis(settings.redis, socket_timeout=1)
    layout = KeyLayout(settings.redis.key_prefix)
    reader = Reader(store_wrapper(store), config, lambda org_id: dict(redis.hgetall(layout.alerts_open(org_id))))
    web = Web(
        Actions(reader, access, allowed_hosts(settings.alerts.webhook_allow_hosts)),
        access,
        SignInThrottle(
            settings.console.sign_in_attempts,
            settings.console.sign_in_window_s,
            settings.console.sign_in_attempts_per_user,
        ),
        metrics or ConsoleMetrics(),
        secure_cookies=settings.console.cookies_secure(),
        vega_bundle=_vega_bundle,
    )
    exports = Exports(web, store, settings.console.export_settle_s, settings.console.export_max_rows)
    oidc = OidcClient(
        allowed_hosts(settings.console.oidc_allow_hosts),
        settings.console.oidc_clock_skew_s,
        settings.console.oidc_jwks_refresh_s,
    )
    sso = SsoPages(web, SsoStore(access), oidc, settings.console.public())
    return create_app(web, sso, exports, settings.console.max_body_bytes, settings.console.hsts)
