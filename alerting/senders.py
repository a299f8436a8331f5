"""Sending one alert to one target of one channel.

Slack, Teams and PagerDuty are plain JSON POSTs (httpx; no SDK adds anything
for an incoming webhook). SMS goes through the ``twilio`` SDK and email
through ``smtplib``; both are blocking, so they run in a thread. Every failure
becomes a :class:`DeliveryError` that says whether a retry can help and how
long the provider asked us to wait (``Retry-After``).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client as TwilioClient

from alerting.render import (
    AlertView,
    email_message,
    pagerduty_resolve,
    pagerduty_trigger,
    slack_payload,
    sms_text,
    teams_payload,
)
from alerting.webhooks import InternalTargetError, pinned_request
from schemas.alerts import Alert, Resolved
from schemas.budgets import Channel
from schemas.channels import ChannelSpec
from schemas.settings import AlertSettings
from schemas.webhook_targets import allowed_hosts

__all__ = ["DeliveryError", "Senders", "SmtpConfig", "TwilioConfig", "classify", "retry_after_seconds", "send_smtp"]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class DeliveryError(Exception):
    """A delivery that did not happen: ``retryable`` says if trying again can help."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


def retry_after_seconds(value: str | None, now_epoch: float) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now_epoch)
    except (TypeError, ValueError):
        return None


def classify(status: int, retry_after: float | None, body: str) -> DeliveryError | None:
    """None for success; otherwise whether a retry helps: 408, 425, 429 and 5xx yes, other 4xx no."""
    if 200 <= status < 300:
        return None
    reason = f"HTTP {status}: {body[:200]}".strip()
    if status in (408, 425, 429) or status >= 500:
        return DeliveryError(reason, retryable=True, retry_after=retry_after, status=status)
    return DeliveryError(reason, retryable=False, status=status)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 25
    security: str = "starttls"  # none | starttls | tls
    username: str = ""
    password: str = ""
    sender: str = "spendstream@localhost"
    timeout_s: float = 10.0
    verify: bool = True

    def __repr__(self) -> str:
        return f"SmtpConfig({self.host}:{self.port} {self.security} as {self.username or '-'})"

    @classmethod
    def of(cls, alerts: AlertSettings) -> SmtpConfig | None:
        """The SMTP server that alerts and reports go out through; None when none is set."""
        if not alerts.smtp_host:
            return None
        return cls(
            alerts.smtp_host,
            alerts.smtp_port,
            alerts.smtp_security,
            alerts.smtp_username,
            alerts.smtp_password.get_secret_value(),
            alerts.smtp_from,
            alerts.http_timeout_s,
            alerts.smtp_verify,
        )


@dataclass(frozen=True, slots=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    from_number: str
    base_url: str | None = None  # the API's base URL, for a regional or a local endpoint

    def __repr__(self) -> str:
        return f"TwilioConfig({self.account_sid} from {self.from_number})"


def send_smtp(config: SmtpConfig, message: EmailMessage) -> None:
    """Hand ``message`` to the SMTP server, once; raises DeliveryError (retryable or not)."""
    context = ssl.create_default_context()
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        smtp: smtplib.SMTP
        if config.security == "tls":
            smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
        with smtp:
            if config.security == "starttls":
                smtp.starttls(context=context)
            if config.username:
                smtp.login(config.username, config.password)
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:200], retryable=400 <= exc.smtp_code < 500
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        transient = all(400 <= c < 500 for c in codes)
        refused = ", ".join(sorted(exc.recipients))
        raise DeliveryError(f"SMTP refused {refused}: {codes}", retryable=transient) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP unreachable: {type(exc).__name__}: {exc}"[:200], retryable=True) from None


class Senders:
    def __init__(
        self,
        http: httpx.AsyncClient,
        smtp: SmtpConfig | None = None,
        twilio: TwilioConfig | None = None,
        pagerduty_url: str = PAGERDUTY_EVENTS_URL,
        webhook_allow: frozenset[str] = frozenset(),
    ) -> None:
        self.http = http
        self.smtp = smtp
        self.twilio = twilio
        self.pagerduty_url = pagerduty_url
        self.webhook_allow = webhook_allow  # internal hosts an org's webhook may name (the operator's list)

    @classmethod
    def of(cls, alerts: AlertSettings) -> Senders:
        """The alert channels' clients, from settings (credentials come from the environment)."""
        twilio = None
        if alerts.twilio_account_sid:
            twilio = TwilioConfig(
                alerts.twilio_account_sid,
                alerts.twilio_auth_token.get_secret_value(),
                alerts.twilio_from,
                alerts.twilio_base_url or None,
            )
        http = httpx.AsyncClient(timeout=alerts.http_timeout_s, headers={"User-Agent": "spendstream"})
        smtp = SmtpConfig.of(alerts)
        return cls(http, smtp, twilio, alerts.pagerduty_events_url, allowed_hosts(alerts.webhook_allow_hosts))

    async def send(self, channel: ChannelSpec, target: str, alert: Alert, view: AlertView) -> None:
        """Deliver once; raises DeliveryError."""
        if channel.type is Channel.SLACK:
            await self._post_webhook(target, slack_payload(view))
        elif channel.type is Channel.TEAMS:
            await self._post_webhook(target, teams_payload(view))
        elif channel.type is Channel.PAGERDUTY:
            if isinstance(alert, Resolved):
                body = pagerduty_resolve(alert.resolves, target)
            else:
                body = pagerduty_trigger(view, alert, target)
            await self._post(self.pagerduty_url, body)
        elif channel.type is Channel.EMAIL:
            await asyncio.to_thread(self._email, target, alert, view)
        else:
            await asyncio.to_thread(self._sms, target, view)

    async def _post_webhook(self, url: str, body: dict[str, Any]) -> None:
        """An org's own URL: never to an internal service (checked as resolved, then pinned)."""
        try:
            pinned = await pinned_request(url, self.webhook_allow)
        except InternalTargetError as exc:
            raise DeliveryError(f"refused: {exc}", retryable=False) from None
        except httpx.TransportError as exc:
            raise DeliveryError(f"unreachable: {exc}"[:200], retryable=True) from None
        await self._post(pinned.url, body, pinned.headers, pinned.extensions)

    async def _post(
        self,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        try:
            response = await self.http.post(url, json=body, headers=headers, extensions=extensions)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"timed out: {type(exc).__name__}", retryable=True) from None
        except httpx.TransportError as exc:
            raise DeliveryError(f"unreachable: {type(exc).__name__}", retryable=True) from None
        failure = classify(
            response.status_code, retry_after_seconds(response.headers.get("retry-after"), time.time()), response.text
        )
        if failure is not None:
            raise failure

    def _email(self, recipient: str, alert: Alert, view: AlertView) -> None:
        config = self.smtp
        if config is None:
            raise DeliveryError("email is not configured (SPENDSTREAM_ALERTS__SMTP_HOST)", retryable=False)
        message = email_message(view, alert, config.sender, recipient)
        send_smtp(config, message)

    def _sms(self, number: str, view: AlertView) -> None:
        config = self.twilio
        if config is None:
            raise DeliveryError("SMS is not configured (SPENDSTREAM_ALERTS__TWILIO_ACCOUNT_SID)", retryable=False)
        client = TwilioClient(config.account_sid, config.auth_token)
        if config.base_url:
            client.api.base_url = config.base_url
        try:
            client.messages.create(to=number, from_=config.from_number, body=sms_text(view))
        except TwilioRestException as exc:
            response = client.http_client.last_response
            header = response.headers.get("Retry-After") if response is not None and response.headers else None
            failure = classify(exc.status, retry_after_seconds(header, time.time()), str(exc.msg))
            raise failure or DeliveryError(str(exc.msg), retryable=False) from None
        except (TwilioException, OSError) as exc:
            raise DeliveryError(f"Twilio unreachable: {type(exc).__name__}", retryable=True) from None
