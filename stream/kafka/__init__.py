"""Kafka adapters: client configuration, the embedded broker, topics and dead letters."""
