"""Durable activities: thin wrappers that validate input and call the library."""
