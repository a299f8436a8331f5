"""Write schemas/jsonschema/usage_event.v1.json from the Python model (make jsonschema)."""

import json
from pathlib import Path

from schemas.events import usage_event_json_schema

TARGET = Path(__file__).resolve().parent.parent / "schemas" / "jsonschema" / "usage_event.v1.json"

if __name__ == "__main__":
    TARGET.write_text(json.dumps(usage_event_json_schema(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {TARGET}")  # noqa: T201
