"""spendstream sinks."""
