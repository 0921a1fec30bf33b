"""Completion callbacks: Mistral's webhook notifier POSTs workflow and task
events to the bridge; this package checks and records them."""
