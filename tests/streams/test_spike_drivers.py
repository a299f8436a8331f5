"""A spike names its driver in the dimension where the bucket is most concentrated (user, model, feature,
allocation tag, department), with its share and cost, as the alert and the anomalies table say it."""

from __future__ import annotations

from alerting.render import view_of
from insights.spikes import Spike
from schemas.alerts import Spike as SpikeAlert
from streams.spike_records import anomaly_row, entities_of, spike_alert

KINDS = frozenset({"org", "user", "department", "model", "feature"})
TAGS = (["project"], ["apollo"])
ROWS = [  # org, department, user, model, feature, tag keys, tag values, cost: eng's bucket is 90 % ada's
    ("acme", "eng", "ada", "gpt-4o", "chat", ["project"], ["apollo"], 300),
    ("acme", "eng", "ada", "o3-mini", "chat", ["project"], ["hermes"], 300),
    ("acme", "eng", "ada", "claude", "search", ["project"], ["(untagged)"], 300),
    ("acme", "eng", "bob", "gpt-4o", "search", ["project"], ["apollo"], 100),
]


def test_every_other_dimensions_parts_add_up_to_the_cost() -> None:
    entities = entities_of(ROWS, KINDS)
    cost, parts = entities["acme|department/eng"]
    assert cost == 1_000
    for dim in ("user", "model", "feature", "tag"):
        assert sum(v for k, v in parts.items() if k.startswith(dim + "/")) == cost
    assert not any(k.startswith("department/") for k in parts)  # not its own dimension
    assert max(parts, key=lambda k: parts[k]) == "user/ada"  # 90 %, where no model has over 40 %
    _, ada = entities["acme|user/ada"]
    assert max(ada, key=lambda k: ada[k]) == "feature/chat"  # 2/3 of her bucket; her models split it in thirds
    models, features = {"model/gpt-4o", "model/o3-mini", "model/claude"}, {"feature/chat", "feature/search"}
    projects = {"tag/project=apollo", "tag/project=hermes", "tag/project=(untagged)"}
    assert set(ada) == models | features | projects  # not her department, which holds all of her spend


def test_a_project_tag_can_drive_a_spike() -> None:
    """Three users, three models, two features and two departments share a bucket that is 80 % one
    project's: the tag is the driver."""
    rows = [
        ("acme", department, user, model, feature, ["project", "customer"], [project, "globex"], cost)
        for department, user, model, feature, project, cost in (
            ("eng", "ada", "gpt-4o", "chat", "apollo", 300),
            ("eng", "bob", "o3-mini", "search", "apollo", 300),
            ("research", "cy", "claude", "chat", "apollo", 200),
            ("research", "cy", "gpt-4o", "search", "hermes", 200),
        )
    ]
    cost, parts = entities_of(rows, frozenset({"org"}))["acme|org/acme"]
    assert parts["tag/customer=globex"] == cost  # one customer pays for all: the largest part of all
    del parts["tag/customer=globex"]
    assert max(parts, key=lambda k: parts[k]) == "tag/project=apollo"
    spike = Spike("acme|org/acme", 3_600, 1e9, 1e8, 30.0, "tag/project=apollo", 0.8)
    alert = spike_alert("acme", spike, 3_600)
    assert alert.drivers == [{"tag": "project=apollo", "cost_nanos": 800_000_000, "share": 0.8}]
    assert alert.reason == "tag project=apollo is 80% of the bucket ($0.80)"
    assert view_of(alert, "https://console.example").drivers == ("project=apollo $0.80 (80%)",)


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
