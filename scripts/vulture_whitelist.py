"""What vulture (make check) reports as unused but is used from outside the code it reads: protocol and
framework callbacks (asyncio, http.server, aiosmtpd, LiteLLM, Faust's decorators), pydantic validators,
enum members read by value, and row fields written to ClickHouse or JSON by name. Add to it only such names;
delete dead code instead. Regenerate the candidates with: vulture --make-whitelist."""

# ruff: noqa
# fmt: off
_.lifespan_context # unused attribute admin/decision_service.py
_.handle_DATA # unused method admin/inbox.py
created_at # unused variable console/access_store.py
created_at # unused variable console/access_store.py
revoked_at # unused variable console/access_store.py
_.sessions_count # unused method console/access_store.py
_.to_json # unused method dashboards/grafana.py
replayed # unused variable enforcement/decision.py
released_reservation # unused variable enforcement/decision.py
_.connection_made # unused method enforcement/pipelined.py
_.data_received # unused method enforcement/pipelined.py
_.connection_lost # unused method enforcement/pipelined.py
coverage # unused variable insights/evaluation.py
probability_brier # unused variable insights/evaluation.py
_.coverage # unused attribute insights/evaluation.py
_.probability_brier # unused attribute insights/evaluation.py
precision # unused variable insights/evaluation.py
recall # unused variable insights/evaluation.py
delay_buckets # unused variable insights/evaluation.py
flagged_episodes # unused variable insights/evaluation.py
natural_peak_ratio # unused variable insights/evaluation.py
_.async_pre_call_hook # unused method integrations/litellm_hook.py
call_type # unused variable integrations/litellm_hook.py
_.async_log_success_event # unused method integrations/litellm_hook.py
_.async_post_call_failure_hook # unused method integrations/litellm_hook.py
_.previous_requests # unused attribute reports/data.py
_.drill # unused method reports/filters.py
previous_requests # unused variable reports/monthly.py
BUDGET_STAGE # unused variable schemas/alerts.py
CAP_DENIED # unused variable schemas/alerts.py
PROJECTED_EXCEED # unused variable schemas/alerts.py
SPIKE # unused variable schemas/alerts.py
RESOLVED # unused variable schemas/alerts.py
ERROR # unused variable schemas/alerts.py
FEATURE # unused variable schemas/budgets.py
_.total_tokens # unused property schemas/events.py
_._has_port # unused method schemas/settings.py
_._scheme # unused method schemas/settings.py
model_config # unused variable schemas/settings.py
focus_type # unused variable sinks/focus.py
deleted # unused variable sinks/tables.py
channel_type # unused variable sinks/tables.py
detected_to_done_ms # unused variable sinks/tables.py
delivery_key # unused variable sinks/tables.py
period_start # unused variable sinks/tables.py
naive_nanos # unused variable sinks/tables.py
bucket_seconds # unused variable sinks/tables.py
started_at # unused variable sinks/tables.py
daemon_threads # unused variable stack/clickhouse_server.py
allow_reuse_address # unused variable stack/clickhouse_server.py
protocol_version # unused variable stack/clickhouse_server.py
_.log_message # unused method stack/clickhouse_server.py
_.do_HEAD # unused method stack/clickhouse_server.py
_.do_POST # unused method stack/clickhouse_server.py
signum # unused variable stack/clickhouse_server.py
option # unused variable schemas/report_kinds.py (the Generate Report page reads it)
_._fetch_max_wait_ms # unused attribute streams/app.py (read by aiokafka when the fetcher starts)
_._new_consumer_thread # unused method streams/app.py (Faust calls it)
list_cost_nanos # unused variable sinks/tables.py
cost_by_type_nanos # unused variable sinks/tables.py
usd_per_token # unused variable sinks/tables.py
input_cost_nanos # unused variable sinks/tables.py (rollup columns, read by name in SQL)
output_cost_nanos # unused variable sinks/tables.py (rollup columns, read by name in SQL)
cache_read_cost_nanos # unused variable sinks/tables.py (rollup columns, read by name in SQL)
cache_write_cost_nanos # unused variable sinks/tables.py (rollup columns, read by name in SQL)
reasoning_cost_nanos # unused variable sinks/tables.py (rollup columns, read by name in SQL)
