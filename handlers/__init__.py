"""The built-in handler plugins, one module each, registered as entry points in pyproject.

Each turns a webhook that names too little into an enriched event: it finds the guest through
the Zenoti API, reads the membership or package as Zenoti has it now, and publishes the join.
Nothing is imported here, so that loading one plugin never imports (or breaks on) another.
"""
