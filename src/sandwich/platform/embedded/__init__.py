"""Engines the platform starts itself on a dev box: PostgreSQL, the NATS broker, the mail sink."""
