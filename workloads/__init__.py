"""Usage for the demo, the tests and the benchmarks: synthetic orgs and the replay of a real LLM request
trace, as :class:`~schemas.events.UsageEvent` streams (``generators``, pure)."""
