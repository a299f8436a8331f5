"""The alert union: each kind's record, its one dedup key, its severity, and records from before the union."""

import msgspec
import pytest

from schemas.alerts import (
    Alert,
    BudgetStage,
    CapDenied,
    Denial,
    ProjectedExceed,
    Resolved,
    Severity,
    Spike,
    Unpriced,
    decode_alert,
    decode_denial,
    encode_alert,
    encode_denial,
    severity_of,
)

AT = "2026-01-01T00:00:00+00:00"


def _stage(stage: int) -> BudgetStage:
    return BudgetStage(
        org_id="acme",
        scope="department/eng",
        period="monthly",
        period_key="2026-01",
        stage=stage,
        limit_nanos=10**12,
        spent_nanos=stage * 10**10,
        detected_at=AT,
    )


def test_every_kind_round_trips_with_its_tag() -> None:
    alerts: list[Alert] = [
        _stage(80),
        CapDenied(org_id="acme", scope="user/ada", period="daily", period_key="2026-01-01", detected_at=AT),
        ProjectedExceed(
            org_id="acme",
            scope="org/acme",
            period="monthly",
            period_key="2026-01",
            projected_p10_nanos=1,
            projected_p50_nanos=2,
            projected_p90_nanos=3,
            probability=0.9,
            detected_at=AT,
        ),
        Spike(
            org_id="acme",
            scope="user/ada",
            period="60s",
            period_key=AT,
            observed_nanos=9,
            expected_nanos=1,
            detected_at=AT,
        ),
        Unpriced(org_id="acme", scope="model/m", provider="p", model="m", detected_at=AT),
        Resolved(org_id="acme", scope="user/ada", resolves="k", detected_at=AT),
    ]
    for alert in alerts:
        raw = encode_alert(alert)
        assert msgspec.json.decode(raw)["kind"] == alert.kind
        assert decode_alert(raw) == alert


def test_the_dedup_key_is_what_the_alert_is_about() -> None:
    assert _stage(80).dedup_key == "acme|department/eng|monthly|2026-01|budget_stage|80"
    assert _stage(80).dedup_key != _stage(100).dedup_key
    later = BudgetStage(**(msgspec.structs.asdict(_stage(80)) | {"detected_at": "2026-01-02T00:00:00+00:00"}))
    assert later.dedup_key == _stage(80).dedup_key  # when it was seen is not what it is about
    unpriced = Unpriced(
        org_id="acme", scope="model/m", provider="p", model="m", period="monthly", period_key="2026-01", detected_at=AT
    )
    assert unpriced.dedup_key == "acme|model/p/m|monthly|2026-01|unpriced|0"
    resolved = Resolved(org_id="acme", scope="department/eng", resolves=_stage(100).dedup_key, detected_at=AT)
    assert resolved.dedup_key == _stage(100).dedup_key + "|resolved"


def test_records_written_before_the_union_still_decode() -> None:
    flat = (
        b'{"kind":"budget_stage","dedup_key":"acme|department/eng|monthly|2026-01|budget_stage|80",'
        b'"org_id":"acme","scope":"department/eng","detected_at":"' + AT.encode() + b'","period":"monthly",'
        b'"period_key":"2026-01","stage":80,"limit_nanos":1000000000000,"spent_nanos":800000000000}'
    )
    alert = decode_alert(flat)
    assert isinstance(alert, BudgetStage) and alert.dedup_key == "acme|department/eng|monthly|2026-01|budget_stage|80"


def test_bad_records_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="kind"):
        decode_alert(b'{"kind": "weather", "org_id": "a", "scope": "s", "detected_at": "x"}')
    with pytest.raises(ValueError, match="not JSON"):
        decode_alert(b"{")
    with pytest.raises(ValueError, match="stage"):
        decode_alert(b'{"kind": "budget_stage", "org_id": "a", "scope": "s", "detected_at": "x"}')


def test_a_denial_becomes_a_cap_denied_alert() -> None:
    denial = Denial(
        org_id="acme",
        scope="user/ada",
        period="daily",
        period_key="2026-01-01",
        limit_nanos=10,
        spent_nanos=10,
        reserved_nanos=0,
        request_id="r1",
        estimate_nanos=5,
        detected_at=AT,
    )
    alert = decode_denial(encode_denial(denial)).alert()
    assert alert.dedup_key == "acme|user/ada|daily|2026-01-01|cap_denied|0"
    assert "r1" in (alert.reason or "")
    older = msgspec.structs.replace(denial, scope="user/ada/daily")  # an older client queued scope/period
    assert older.alert().scope == "user/ada"
    with pytest.raises(ValueError, match="denial"):
        decode_denial(b'{"org_id": "acme"}')


def test_severity_escalates_with_the_stage() -> None:
    assert severity_of(_stage(50)) is Severity.INFO
    assert severity_of(_stage(80)) is Severity.WARNING
    assert severity_of(_stage(100)) is Severity.CRITICAL
    assert severity_of(CapDenied(org_id="a", scope="org/a", detected_at=AT)) is Severity.CRITICAL
