"""The Faust app, its agents and the ``spendstream`` command.

The only place that builds concrete adapters from settings.
"""
