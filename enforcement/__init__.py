"""spendstream enforcement."""
