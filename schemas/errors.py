"""The root of every error spendstream raises for input it cannot use.

``SpendstreamError(field, reason)`` names the offending field (a JSON path such as
``$.input_tokens``, a file path such as ``budgets[2].limit``, or a parameter name) and says
why, so every caller, from the CLI to the HTTP services, reports it the same way::

    SpendstreamError
    ├── schemas.budgets.BudgetError          a budget or org setting
    │   └── schemas.budget_file.BudgetFileError   the budgets file
    ├── schemas.pricing.PricingError         a price, discount or policy
    │   ├── schemas.pricing.UnpricedModelError    no price and the policy is reject
    │   └── schemas.price_sources.PriceFileError  a price file
    ├── schemas.money.MoneyError             an amount of money
    ├── schemas.channels.AlertConfigError    an alert channel or routing record
    ├── schemas.params.ParameterError        a query or path parameter of an HTTP service
    ├── enforcement.keys.SubjectError        a subject, id or amount the caps cannot meter
    ├── enforcement.access.KeyFileError      the decision service's keys file
    ├── integrations.litellm_mapping.IdentityError  a proxy request whose identity is refused (403)
    ├── console.store.AccessError            a console user or API token
    ├── reports.filters.FilterError          a filter of the console's views
    └── console.budget_edit.ForbiddenError   what the console principal may not do (403)

Conditions that are not bad input have their own roots: ``enforcement.client.CapUnavailableError``
(Redis cannot answer), ``enforcement.core.StateNotLoadedError`` (an org's cap state is not in
Redis), ``alerting.channels.DeliveryError`` (a provider refused a message), ``stack.process.StartError``
(a local service did not come up) and ``stack.chhttp.ProtocolError`` (ClickHouse answered in a way
the client cannot read).
"""

from __future__ import annotations

__all__ = ["ERROR_BODY_SCHEMA", "SpendstreamError"]


class SpendstreamError(ValueError):
    """Input spendstream cannot use: ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


ERROR_BODY_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["field", "reason"],
            "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
        }
    },
}
"""How the HTTP services (the decision service, the console's API) answer a SpendstreamError: its JSON Schema."""
