"""Hard caps, checked before each request: the Redis key layout (``keys``), who spends (``subject``), the Lua
scripts that reserve, settle and release in one atomic call (``scripts``, ``settle_script``), their pure
rules (``core``, ``client_core``), the clients a proxy embeds (``client``, sync and async over one core),
the decision service's HTTP app (``service``) and its proxy keys (``access``). Installs on its own: redis
and hiredis only, so a proxy needs nothing else. The service's process is assembled in
``admin.decision_service``."""
