"""The worker: the Faust app, the only module that imports Faust (``app``), and what it is built from
(``wiring`` assembles every part from settings): the usage pipeline (``processing`` pure, ``pipeline``,
``redis_apply``), the config follower (``config_follower``), usage alerts, dead letters, drift, the
insights runner, and the recovery and rebuild of Redis's state (``recovery``, ``rebuild``)."""
