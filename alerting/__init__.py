"""Alerts from raised to delivered: which budget stages are due (``plan``, pure), how each channel reads
(``render``, pure; ``enrich`` adds context from ClickHouse), the channels' clients (``channels``: email,
Slack, Teams, Twilio SMS, PagerDuty, webhooks checked by ``webhooks``), and the dispatcher that delivers
once per alert and resolves incidents (``dispatcher``)."""
