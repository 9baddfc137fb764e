"""Watching the reconciler from outside: health, Prometheus metrics, the HTTP endpoint, the heartbeat
line and the webhook event sink (see docs/architecture.md)."""
