"""Durable state in one DuckDB database file inside the data directory."""
