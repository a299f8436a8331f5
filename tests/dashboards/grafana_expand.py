"""What Grafana and grafana-clickhouse-datasource do to a panel's SQL before ClickHouse sees it.

Grafana interpolates template variables (``${name}``, ``$name``, ``${name:singlequote}``); the plugin
then expands its macros as its pkg/macros/macros.go does: ``$__timeFilter(c)`` ->
``c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)``, ``$__timeInterval(c)`` ->
``toStartOfInterval(toDateTime(c), INTERVAL <n> second)``, ``$__fromTime`` / ``$__toTime`` ->
``toDateTime(<s>)``, ``$__interval_s`` -> ``<n>``, and the ``_ms`` and date variants.
"""

from __future__ import annotations

import re
from datetime import datetime

_MACRO = re.compile(r"\$__(\w+)(?:\(([^()]*)\))?")


def interpolate(sql: str, variables: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, fmt = match.group(1) or match.group(3), match.group(2)
        if name not in variables:
            raise KeyError(f"no value for template variable {name}")
        value = variables[name]
        return f"'{value}'" if fmt == "singlequote" else value

    return re.sub(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)", one, sql)


def expand(sql: str, start: datetime, end: datetime, interval_s: int, variables: dict[str, str]) -> str:
    sql = interpolate(sql, variables)
    frm, to = int(start.timestamp()), int(end.timestamp())
    frm_ms, to_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)

    def macro(match: re.Match[str]) -> str:
        name, args = match.group(1), match.group(2)
        column = (args or "").strip()
        if name == "timeFilter":
            return f"{column} >= toDateTime({frm}) AND {column} <= toDateTime({to})"
        if name == "timeFilter_ms":
            return f"{column} >= fromUnixTimestamp64Milli({frm_ms}) AND {column} <= fromUnixTimestamp64Milli({to_ms})"
        if name == "dateFilter":
            return f"{column} >= toDate('{start:%Y-%m-%d}') AND {column} <= toDate('{end:%Y-%m-%d}')"
        if name == "timeInterval":
            return f"toStartOfInterval(toDateTime({column}), INTERVAL {max(interval_s, 1)} second)"
        if name == "fromTime":
            return f"toDateTime({frm})"
        if name == "toTime":
            return f"toDateTime({to})"
        if name == "fromTime_ms":
            return f"fromUnixTimestamp64Milli({frm_ms})"
        if name == "toTime_ms":
            return f"fromUnixTimestamp64Milli({to_ms})"
        if name == "interval_s":
            return str(max(interval_s, 1))
        raise ValueError(f"macro $__{name} is not one the plugin knows")

    return _MACRO.sub(macro, sql)
