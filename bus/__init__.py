"""Kafka, outside Faust: topic names and settings (``topics``), creating them (``topic_admin``), the one
producer of usage events (``usage_producer``), and ``config.v1`` read, published and followed
(``config_topic``). The worker's own consuming is Faust's (``streams.app``)."""
