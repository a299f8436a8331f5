"""Reports a finance team reads: each kind's data (``data``, read through ``sinks.report_queries``) and pure
builder (``monthly``, ``chargeback``, ``ledger``, ``feature_roi``, ``model_value``, ``custom``) make one
:class:`~reports.model.Report`, which renders to PDF, XLSX and CSV (``render_*``, ``files``). ``build`` is
the one path from a kind (``schemas.report_kinds``) to a report, for the CLI, the console and the scheduler."""
