"""The root of every error spendstream raises for input it cannot use, and the HTTP status each answers.

``SpendstreamError(field, reason)`` names the offending field (a JSON path such as
``$.input_tokens``, a file path such as ``budgets[2].limit``, or a parameter name) and says
why, so every caller, from the CLI to the HTTP services, reports it the same way. Each class
carries its HTTP ``status`` (400 unless it says otherwise): the HTTP services map an error to
its answer by that attribute alone, in one place each::

    SpendstreamError (400)
    ├── schemas.budgets.BudgetError                a budget or org setting
    │   └── schemas.budget_file.BudgetFileError     the budgets file
    ├── schemas.pricing.PricingError               a price, discount or policy
    │   ├── schemas.pricing.UnpricedModelError      no price and the policy is reject
    │   └── schemas.price_sources.PriceFileError    a price file
    ├── schemas.money.MoneyError                   an amount of money
    ├── schemas.channels.AlertConfigError          an alert channel or routing record
    ├── schemas.cost_allocation.ChargebackError         cost centres and the unallocated rule
    ├── schemas.allocation_tags.TagError           an org's declared allocation tags
    ├── schemas.report_templates.TemplateError     a saved report template
    ├── schemas.params.ParameterError              a query or path parameter of an HTTP service
    ├── enforcement.subject.SubjectError           a subject, id or amount the caps cannot meter
    ├── enforcement.access.KeyFileError            the decision service's keys file
    ├── integrations.litellm_mapping.IdentityError (403) a proxy request whose identity is refused
    ├── console.access_store.AccessError                  a console user or API token
    ├── console.id_tokens.SsoRefused (403)         a sign-in through an identity provider, refused
    ├── reports.filters.FilterError                a filter of the console's views
    ├── schemas.focus_export.ExportError           a FOCUS export request (cursor, page size, format)
    ├── schemas.report_kinds.ReportError           a report that cannot be made as asked
    ├── ForbiddenError (403)                       what the principal may not do
    ├── NotFoundError (404)                        nothing the principal may see by that name
    ├── ConflictError (409)                        creating what exists, or removing what is in use
    └── PreconditionError (412)                    If-Match is not the current version

Conditions that are not bad input have their own roots: ``enforcement.client.CapUnavailableError``
(Redis cannot answer), ``enforcement.core.StateNotLoadedError`` (an org's cap state is not in
Redis), ``alerting.senders.DeliveryError`` (a provider refused a message), ``stack.process.StartError``
(a local service did not come up) and ``stack.chhttp.ProtocolError`` (ClickHouse answered in a way
the client cannot read).
"""

from __future__ import annotations

__all__ = [
    "ERROR_BODY_SCHEMA",
    "ConflictError",
    "ForbiddenError",
    "NotFoundError",
    "PreconditionError",
    "SpendstreamError",
]


class SpendstreamError(ValueError):
    """Input spendstream cannot use: ``field`` names it, ``reason`` says why; ``status`` is its HTTP answer."""

    status = 400

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class ForbiddenError(SpendstreamError):
    """The principal may not do this; ``field`` names what it may not touch."""

    status = 403


class NotFoundError(SpendstreamError):
    """Nothing by that name that the principal may see."""

    status = 404


class ConflictError(SpendstreamError):
    """Creating what exists, or removing what is still in use."""

    status = 409


class PreconditionError(SpendstreamError):
    """The version given (If-Match) is not the current one: someone changed it meanwhile."""

    status = 412


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
