"""Starting the local services on one machine: Kafka, Redis and the embedded ClickHouse."""
