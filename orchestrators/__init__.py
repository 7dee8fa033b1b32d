"""Durable orchestrators: the run, and the lanes it starts."""

from orchestrators import history_timestamps

history_timestamps.install()
