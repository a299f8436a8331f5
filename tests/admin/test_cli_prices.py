"""`spendstream prices import --litellm` prices history too: it made the map effective from the moment
of the import, so every event from before it was rated at zero."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bus.config_topic import config_state
from tests.deployment import Deployment

pytestmark = pytest.mark.stack

MAP = {"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05}}


def test_a_litellm_map_is_effective_from_the_start_of_history(deployment: Deployment, tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(MAP))
    result = deployment.cli("prices", "import", "--litellm", str(path))
    assert result.returncode == 0, result.stderr
    state = config_state(deployment.settings.kafka.bootstrap, deployment.topics.config)
    entry = state.catalogue().lookup("openai", "gpt-4o", datetime(2001, 1, 1, tzinfo=UTC))
    assert entry is not None and entry.effective_from == datetime(1970, 1, 1, tzinfo=UTC)
    bad = deployment.cli("prices", "import", "--litellm", str(path), "--effective-from", "2024-06-01T00:00:00")
    assert bad.returncode == 2 and "time zone" in bad.stderr
