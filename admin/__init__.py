"""The ``spendstream`` command and the programs it starts, each assembled top to bottom in one module:
``cli`` (the entry point and the operator's commands), ``demo`` (``make run``), ``decision_service``,
``console_cli``, ``reports_cli`` with ``report_scheduler``, ``report_templates_cli`` and ``report_runs_cli``,
``inbox`` (the demo's local SMTP server) and ``environment`` (settings from the environment). The worker
is assembled in ``streams.wiring``, the console in ``console.serve``."""
