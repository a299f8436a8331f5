"""spendstream insights."""
