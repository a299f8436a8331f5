"""The Grafana dashboards, generated from code (``generate``, over ``grafana``'s panel helpers and the same SQL
builders the console uses, ``sinks.queries``) into ``grafana/dashboards/*.json``; the Prometheus scrape
config and alert rules live beside them in ``prometheus/``."""
