"""A spike names its driver in the dimension where the bucket is most concentrated (user, model, feature,
department), with its share and cost, as the alert and the anomalies table say it."""

from __future__ import annotations

from alerting.render import view_of
from insights.spikes import Spike
from schemas.alerts import Spike as SpikeAlert
from streams.spike_records import anomaly_row, entities_of, spike_alert

KINDS = frozenset({"org", "user", "department", "model", "feature"})
ROWS = [  # org, department, user, model, feature, cost: eng's bucket is 90 % ada's, spread over three models
    ("acme", "eng", "ada", "gpt-4o", "chat", 300),
    ("acme", "eng", "ada", "o3-mini", "chat", 300),
    ("acme", "eng", "ada", "claude", "search", 300),
    ("acme", "eng", "bob", "gpt-4o", "search", 100),
]


def test_every_other_dimensions_parts_add_up_to_the_cost() -> None:
    entities = entities_of(ROWS, KINDS)
    cost, parts = entities["acme|department/eng"]
    assert cost == 1_000
    for dim in ("user", "model", "feature"):
        assert sum(v for k, v in parts.items() if k.startswith(dim + "/")) == cost
    assert not any(k.startswith("department/") for k in parts)  # not its own dimension
    assert max(parts, key=lambda k: parts[k]) == "user/ada"  # 90 %, where no model has over 40 %
    _, ada = entities["acme|user/ada"]
    assert max(ada, key=lambda k: ada[k]) == "feature/chat"  # 2/3 of her bucket; her models split it in thirds
    models, features = {"model/gpt-4o", "model/o3-mini", "model/claude"}, {"feature/chat", "feature/search"}
    assert set(ada) == models | features  # not her department, which holds all of her spend


def test_only_the_watched_kinds_areentities_of() -> None:
    assert set(entities_of(ROWS, frozenset({"model"}))) == {
        "acme|model/gpt-4o",
        "acme|model/o3-mini",
        "acme|model/claude",
    }


def test_the_alert_names_the_driver_its_share_and_its_cost() -> None:
    spike = Spike("acme|department/eng", 3_600, 1.2e9, 1e8, 30.0, "user/ada", 0.9)
    alert = spike_alert("acme", spike, 3_600)
    assert isinstance(alert, SpikeAlert)
    assert alert.drivers == [{"user_id": "ada", "cost_nanos": 1_080_000_000, "share": 0.9}]
    assert alert.reason == "user ada is 90% of the bucket ($1.08)"
    assert view_of(alert, "https://console.example").drivers == ("ada $1.08 (90%)",)
    row = anomaly_row("acme", spike, 3_600)
    assert (row.entity, row.driver, row.driver_share) == ("department/eng", "user/ada", 0.9)
