"""Retrying: the one way spendstream retries work that failed."""
