"""The cap core without Redis: validation of every input, and reading replies."""

import dataclasses
from datetime import UTC, datetime

import pytest

from enforcement import core
from enforcement.budget_store import encode_budget
from enforcement.keys import KeyLayout, PeriodKeys, fingerprint
from enforcement.subject import Subject, SubjectError
from schemas import Budget, BudgetMode, Period, ScopeKind

PERIODS = PeriodKeys.at(datetime(2024, 5, 17, 12, tzinfo=UTC), "UTC")
LAYOUT = KeyLayout("ss")
SUBJECT = Subject(org_id="acme", department_id="eng", user_id="ada", feature="chat", model="gpt-4o")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"org_id": "acme:eu"}, "org_id"),
        ({"org_id": "{acme}"}, "org_id"),
        ({"org_id": ""}, "org_id"),
        ({"user_id": "a b"}, "user_id"),
        ({"user_id": "u" * 129}, "user_id"),
        ({"department_id": "eng}"}, "department_id"),
        ({"feature": "chat:beta"}, "feature"),
        ({"model": "gpt 4o"}, "model"),
        ({"api_key_id": "k{1}"}, "api_key_id"),
        ({"tags": (("project", "a:b"),)}, "tags.project"),
        ({"tags": (("Project", "apollo"),)}, "tags.Project"),
        ({"tags": (("project", "a"), ("project", "b"))}, "tags"),
        ({"tags": tuple((f"t{i}", "v") for i in range(9))}, "tags"),
        ({"tags": {"project": "apollo"}}, "tags"),
    ],
)
def test_subjects_refuse_key_separators_and_hash_tags(fields: dict[str, str], field: str) -> None:
    base = {"org_id": "acme", "user_id": "ada"}
    base.update(fields)
    with pytest.raises(SubjectError) as info:
        Subject(**base)  # type: ignore[arg-type]
    assert info.value.field == field


def test_each_tag_value_is_a_scope_of_its_own() -> None:
    subject = Subject("acme", "ada", "eng", tags=(("project", "apollo"), ("customer", "c-42")))
    assert subject.scopes()[-2:] == ["tag/project=apollo", "tag/customer=c-42"]
    call = core.reserve_call(LAYOUT, subject, "r1", 10, 60_000, PERIODS)
    assert call.args[-2:] == ["tag/project=apollo", "tag/customer=c-42"]
    untagged = core.reserve_call(LAYOUT, Subject("acme", "ada", "eng"), "r1", 10, 60_000, PERIODS)
    assert call.args[3] != untagged.args[3]  # the digest: a retry naming other tags is another request


@pytest.mark.parametrize(
    ("request_id", "estimate", "ttl", "field"),
    [
        ("r1", -1, 60_000, "estimate"),
        ("r1", 10**20, 60_000, "estimate"),
        ("r1", 1.5, 60_000, "estimate"),
        ("r1", True, 60_000, "estimate"),
        ("r:1", 10, 60_000, "request_id"),
        ("", 10, 60_000, "request_id"),
        ("r1", 10, 10, "ttl_ms"),
    ],
)
def test_reserve_refuses_bad_input(request_id: str, estimate: int, ttl: int, field: str) -> None:
    with pytest.raises(SubjectError) as info:
        core.reserve_call(LAYOUT, SUBJECT, request_id, estimate, ttl, PERIODS)
    assert info.value.field == field


def test_every_key_of_an_org_shares_its_hash_tag() -> None:
    call = core.settle_call(LAYOUT, SUBJECT, "e1", datetime(2024, 5, 17, 12, tzinfo=UTC), 5, PERIODS, "r1", 3, 10)
    assert all("{acme}" in key for key in call.keys)
    assert call.keys[6] == "ss:{acme}:org"  # its "loaded" mark: nothing is counted on lost state
    assert call.keys[7:10] == [
        "ss:{acme}:spent:d:2024-05-17",
        "ss:{acme}:spent:w:2024-W20",
        "ss:{acme}:spent:m:2024-05",
    ]
    assert call.args[:2] == [1, core.DUPLICATE_WINDOW_S]  # events, then the window
    fields = str(call.args[2]).split("\t")
    assert fields[-1] == ""  # every field ends with a tab
    assert fields[:-1] == ["r1", "5", "1", "1", "3", "10", "12"]  # no time of its own: copies are found by id
    assert call.args[3] == fingerprint("e1")  # the fingerprints, apart: they are raw bytes
    assert call.args[6] == core.NO_DIGEST  # and the content digests (none known for a direct call)
    group = str(call.args[4]).split("\t")
    assert group[3:6] == ["2024-05-17|2024-W20|2024-05", "8", "11"]  # period keys; Lua's index of spent:d, stages
    assert call.keys[11 - 1] == "ss:{acme}:stages:2024-05" and call.keys[12 - 1].startswith("ss:{acme}:seen:")
    assert str(call.args[5]).split("\t")[:-1] == [
        "5", "org/acme", "department/eng", "user/ada", "feature/chat", "model/gpt-4o"
    ]  # fmt: skip


def test_a_settle_call_refuses_an_identifier_holding_its_separator() -> None:
    at = datetime(2024, 5, 17, 12, tzinfo=UTC)
    tabbed = Subject.unchecked("acme", "ada\tlovelace", None, None, None, None)  # as if never validated
    with pytest.raises(SubjectError, match="settle"):
        core.settle_batch_call(LAYOUT, [core.SettleItem(tabbed, "e1", at, 5, PERIODS)], validate=False)


def test_a_batch_shares_keys_and_refuses_mixed_orgs() -> None:
    at = datetime(2024, 5, 17, 12, tzinfo=UTC)
    items = [core.SettleItem(SUBJECT, f"e{i}", at, 5, PERIODS, None, 0, i) for i in range(3)]
    call = core.settle_batch_call(LAYOUT, items)
    assert call.args[0] == 3
    assert len(call.args) == 7  # the count, the window, events' fields, fingerprints, the groups, digests
    assert str(call.args[2]).count("\t") == 3 * 7  # the three events share one period and one subject group
    assert str(call.args[4]).count("\t") == 6 and str(call.args[5]).count("\t") == 1 + len(SUBJECT.scopes())
    assert call.args[3] == b"".join(fingerprint(f"e{i}") for i in range(3))
    assert len(call.keys) == len(set(call.keys))
    # a caller may make a Subject per event: equal subjects still share one group
    fresh = [core.SettleItem(dataclasses.replace(SUBJECT), f"e{i}", at, 5, PERIODS, None, 0, i) for i in range(3)]
    assert core.settle_batch_call(LAYOUT, fresh).args[5] == call.args[5]
    other = core.SettleItem(Subject(org_id="globex", user_id="u"), "x", at, 5, PERIODS)
    with pytest.raises(ValueError, match="one org"):
        core.settle_batch_call(LAYOUT, [*items, other])


def test_budgets_encode_exact_stage_thresholds() -> None:
    budget = Budget("acme", ScopeKind.DEPARTMENT, "eng", Period.MONTHLY, 1_000_000_001, BudgetMode.HARD, (50, 80, 100))
    assert encode_budget(budget) == (
        "department/eng/monthly",
        "1000000001|hard|50:500000001,80:800000001,100:1000000001",
    )


def test_parse_denial_names_the_blocking_scope() -> None:
    reply = [0, 2, 0, 1, b"org/acme/monthly", 1000, b"hard", 10, 0, b"department/eng/daily", 500, b"hard", 400, 50]
    decision = core.parse_reserve(reply, "r1", 100, PERIODS)
    assert not decision.allowed
    assert decision.blocking is not None
    assert (decision.blocking.scope, decision.blocking.period, decision.blocking.limit) == (
        "department/eng",
        "daily",
        500,
    )
    assert decision.blocking.resets_at_ms == PERIODS.day_end_ms
    assert "department/eng daily hard cap" in decision.reason
    assert decision.remaining == {"org/acme/monthly": 990, "department/eng/daily": 50}


def test_a_client_keeps_an_orgs_reserve_keys_until_a_period_turns() -> None:
    from datetime import timedelta

    from enforcement.client_core import ClientCore, OrgEntry
    from enforcement.metrics import CapMetrics

    kept = ClientCore(LAYOUT, 60, "closed", 30, CapMetrics.default())
    org = OrgEntry("UTC", "closed", 0.0, 1_000, "deny")
    first, _, periods = kept.reserve_call(org, SUBJECT, "r1", 5_000)
    again, _, _ = kept.reserve_call(org, SUBJECT, "r2", 7_000)
    assert again.keys is first.keys and first.keys == core.reserve_keys(LAYOUT, "acme", periods)
    assert again.args[:2] == ["r2", 7_000]
    tomorrow = PeriodKeys.at(datetime.now(UTC) + timedelta(days=1), "UTC")
    kept._periods["UTC"] = tomorrow  # the day turned
    turned, _, _ = kept.reserve_call(org, SUBJECT, "r3", 5_000)
    assert turned.keys == core.reserve_keys(LAYOUT, "acme", tomorrow) and f"spent:d:{tomorrow.day}" in turned.keys[5]
    other, _, _ = kept.reserve_call(org, Subject("globex", "bo"), "r4", 5_000)
    assert all("{globex}" in key for key in other.keys)
