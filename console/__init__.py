"""Admin > Billing, the web console: pages and the admin API over one set of read models (``readmodels``,
``analyst``) and actions (``actions``), with who may do what (``roles``), sign-in and tokens
(``access_store``, ``credentials``, ``throttle``), edits checked before they are published (``budget_edit``,
``channel_edit``, ``preview``), reports and the FOCUS export (``report_pages``, ``export_api``), and the HTTP
guard (``http_guard``). ``serve`` assembles it from settings; ``app`` lists its routes."""
