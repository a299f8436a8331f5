"""Forecasts and spike detection in the worker, and a restart that continues from the saved state."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer

from insights.state import InsightState, load_state
from schemas.alerts import ProjectedExceed, Spike, decode_alert
from schemas.events import UsageEvent
from sinks.usage_rows import usage_row
from sinks.usage_store import UsageStore
from tests.deployment import Deployment

WEEKDAY, WEEKEND = 10 * 10**9, 3 * 10**9  # nano-USD a day


def seed_history(dep: Deployment, days: int) -> None:
    """``days`` closed days of org acme (department eng, user ada) straight into ClickHouse."""
    ch = dep.settings.clickhouse
    store = UsageStore(ch.host, ch.port, ch.database)
    store.migrate()
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    rows = []
    for i in range(days, 0, -1):
        day = today - timedelta(days=i)
        event = UsageEvent(
            event_id=f"h{i}",
            occurred_at=day,
            org_id="acme",
            user_id="ada",
            department_id="eng",
            feature="chat",
            provider="openai",
            model="gpt-4o",
        )
        # a partition no topic has, so the worker's offset watermarks are not touched
        rows.append(usage_row(event, WEEKDAY if day.weekday() < 5 else WEEKEND, "catalogue", 999, i))
    store.insert_usage(rows, "history")


def state(dep: Deployment) -> InsightState | None:
    raw = dep.redis().get(f"{dep.settings.redis.key_prefix}:insights:state")
    return load_state(raw) if raw else None


def bob(tag: str, n: int, output_tokens: int) -> UsageEvent:
    return UsageEvent(
        event_id=f"{tag}-{n}",
        occurred_at=datetime.now(UTC),
        org_id="acme",
        user_id="bob",
        department_id="eng",
        feature="chat",
        provider="openai",
        model="gpt-4o",
        output_tokens=output_tokens,
    )


def spike_alerts(dep: Deployment) -> list[dict[str, object]]:
    consumer = Consumer(
        {
            "bootstrap.servers": dep.settings.kafka.bootstrap,
            "group.id": f"peek-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([dep.topics.alerts])
    found = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        alert = decode_alert(message.value() or b"")
        probability = alert.probability if isinstance(alert, ProjectedExceed) else None
        found.append({"kind": alert.kind, "scope": alert.scope, "probability": probability, "alert": alert})
    consumer.close()
    return found


def test_forecasts_and_detectors_continue_after_a_restart(deployment: Deployment) -> None:
    dep = deployment
    dep.env.update(
        {
            "SPENDSTREAM_INSIGHTS__SPIKE_BUCKET_S": "2",
            "SPENDSTREAM_INSIGHTS__SPIKE_LAG_S": "1.5",
            "SPENDSTREAM_INSIGHTS__SPIKE_WARMUP": "4",
            "SPENDSTREAM_INSIGHTS__SPIKE_MIN_USD": "0.001",
            "SPENDSTREAM_INSIGHTS__FORECAST_EVERY_S": "1",
            "SPENDSTREAM_INSIGHTS__CHECKPOINT_EVERY_S": "0",  # save after every run: the test reads the state
        }
    )
    seed_history(dep, 60)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write('budgets: [{org: acme, scope: org, period: monthly, limit: "40"}]\n')
    assert dep.cli("budgets", "apply", handle.name).returncode == 0
    first = dep.start_worker()
    dep.wait_for(lambda: dep.redis().hget(dep.layout.forecast("acme"), "org/acme/monthly") is not None, 60, "forecast")
    latest = json.loads(dep.redis().hget(dep.layout.forecast("acme"), "org/acme/monthly"))
    # about $60-70 a week: the month's P50 lies between what is spent and what 31 weekdays would cost
    assert latest["spent_nanos"] <= latest["p10_nanos"] < latest["p50_nanos"] < latest["p90_nanos"]
    assert latest["p50_nanos"] < 31 * WEEKDAY

    tag = uuid.uuid4().hex[:6]
    sent = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # bob's steady traffic until the detector knows him
        dep.send([bob(tag, sent, 1_000)])  # $0.01
        sent += 1
        time.sleep(0.5)
        saved = state(dep)
        bob_state = saved.watches[2].detector.entities.get("acme|user/bob") if saved else None
        if bob_state is not None and bob_state.n >= 6:
            break
    before = state(dep)
    assert before is not None
    watched = before.watches[2].detector.entities["acme|user/bob"].n
    learnt = before.forecasters["acme|org/acme"].days
    assert learnt >= 59 and watched >= 6
    dep.kill_worker(first)

    dep.start_worker()
    dep.send([bob(tag, sent + i, 40_000) for i in range(3)])  # $1.20 in one bucket: over 100x bob's usual
    dep.wait_for(
        lambda: any(a["kind"] == "spike" and a["scope"] == "user/bob" for a in spike_alerts(dep)),
        90,
        "bob's spike (possible only if the detector kept what it knew: a new one watches 4 buckets first)",
    )
    assert dep.metric("spendstream_insights_state_restored_total") == 1

    def continued() -> bool:  # the state is saved right after the run that sent the alert
        saved = state(dep)
        return saved is not None and saved.watches[2].detector.entities["acme|user/bob"].n > watched

    dep.wait_for(continued, 10, "the saved state to move on from where the first worker left it")
    after = state(dep)
    assert after is not None
    assert after.forecasters["acme|org/acme"].days >= learnt  # no day learnt twice: days only move on
    spike = next(a["alert"] for a in spike_alerts(dep) if a["kind"] == "spike" and a["scope"] == "user/bob")
    assert isinstance(spike, Spike)
    # the first spiking bucket holds one, two or all three $0.40 requests (they may straddle buckets)
    assert spike.observed_nanos in (400_000_000, 800_000_000, 1_200_000_000)
    assert spike.expected_nanos is not None and spike.observed_nanos > 50 * spike.expected_nanos
    assert spike.drivers[0]["model"] == "gpt-4o"
    projected = [a for a in spike_alerts(dep) if a["kind"] == "projected_exceed"]
    assert len(projected) == 1 and projected[0]["scope"] == "org/acme"  # once, though the worker restarted
    rows = (
        dep.ch()
        .query(f"SELECT entity, driver FROM {dep.settings.clickhouse.database}.anomalies WHERE entity = 'user/bob'")
        .result_rows
    )
    assert rows and rows[0] == ("user/bob", "model/gpt-4o")  # bob's one model and one feature: a tie, model first
