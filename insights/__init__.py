"""The online models, pure: month-end forecasts with calibrated intervals (``forecast``, ``changepoint_trend``),
spike detection (``spikes``), their checkpointed state (``state``) and their offline evaluation
(``evaluation``). The worker runs them (``streams.insights_runner``)."""
