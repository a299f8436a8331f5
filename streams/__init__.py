"""The Faust app, its agents and the ``spendstream`` command: the only place that builds adapters from settings."""
