"""Durable orchestrators: the run, and the batches it dispatches."""
