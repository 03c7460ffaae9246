"""Operator tools: ``dlq`` (list, show, replay, purge parked messages), ``parking`` (the lots
they read without harming them), ``triage`` (which types wait, who would take them), ``tap``.
"""
