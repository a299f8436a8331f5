"""ClickHouse, the durable store: the tables and their typed rows (``schema``, ``tables``), the SQL every
reader uses, built by pure code (``queries`` for the dashboards and views, ``report_queries`` for the
console's pages and the reports, ``focus`` for the FOCUS export), the client that inserts and reads
(``usage_store``), and scheduled report runs (``report_runs``). SQL lives nowhere else."""
