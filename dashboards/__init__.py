"""The Grafana dashboards, generated from code into ``grafana/dashboards/*.json``: ``generate`` builds the
ClickHouse dashboards from the same SQL builders the console uses (``sinks.queries``) and ``health`` the
Prometheus ones, on ``grafana``'s panel helpers; the Prometheus scrape config and alert rules live beside
them in ``prometheus/``."""
