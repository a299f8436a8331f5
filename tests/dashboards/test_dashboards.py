"""The dashboard files: generated from dashboards/generate.py, valid for the Grafana version compose pins."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import generate

ROOT = Path(__file__).resolve().parents[2]
BOARDS = ROOT / "dashboards" / "grafana" / "dashboards"


def test_the_committed_files_are_what_the_generator_builds() -> None:
    rendered = generate.render()
    assert sorted(rendered) == sorted(p.name for p in BOARDS.glob("*.json"))
    for name, text in rendered.items():
        assert (BOARDS / name).read_text() == text, f"{name} is stale: run python -m dashboards.generate"


def test_each_dashboard_reads_back_through_the_grafana_11_6_models() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["grafana"]["image"].startswith("grafana/grafana:11.6.")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"grafana-foundation-sdk==\d+!11\.6\.\d+"', pyproject)
    for path in BOARDS.glob("*.json"):
        data = json.loads(path.read_text())
        model = Dashboard.from_json(data)
        again = json.loads(json.dumps(model, cls=JSONEncoder))
        assert again["panels"] and len(again["panels"]) == len(data["panels"])
        for mine, theirs in zip(data["panels"], again["panels"], strict=True):
            assert {k: theirs[k] for k in mine} == mine, f"{path.name}: {mine['title']} does not read back"
        assert data["schemaVersion"] >= 39


def test_datasources_links_and_ids_agree() -> None:
    provisioned = yaml.safe_load((ROOT / "dashboards/grafana/provisioning/datasources/datasources.yml").read_text())
    uids = {d["uid"]: d["type"] for d in provisioned["datasources"]}
    seen_uids = set()
    for path in BOARDS.glob("*.json"):
        data = json.loads(path.read_text())
        assert data["uid"] not in seen_uids
        seen_uids.add(data["uid"])
        ids = [panel["id"] for panel in data["panels"]]
        assert len(ids) == len(set(ids))
        refs = [p["datasource"] for p in data["panels"]] + [
            t["datasource"] for p in data["panels"] for t in p["targets"]
        ]
        refs += [v["datasource"] for v in data.get("templating", {}).get("list", [])]
        for ref in refs:
            assert uids.get(ref["uid"]) == ref["type"], f"{path.name}: unknown datasource {ref}"
    # alerts link to the overview with these variables (alerting/render.py)
    overview = json.loads((BOARDS / "overview.json").read_text())
    assert overview["uid"] == "spendstream-overview"
    shown = {v["name"] for v in overview["templating"]["list"] if v.get("hide", 0) != 2}
    assert shown == {"org", "department", "user", "model"}
