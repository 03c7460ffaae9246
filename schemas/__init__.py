"""Pydantic v2 models: the webhook envelope, the Zenoti resources we read, and enriched events."""
