"""Test support for every Flow service: real PostgreSQL/PostGIS, Redis and RabbitMQ,
each test session isolated by its own database, Redis key prefix and AMQP vhost."""
