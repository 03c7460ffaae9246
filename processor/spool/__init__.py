"""The ingress's durable spool: a delivery the broker does not confirm in time is kept on
local disk, answered 202, and forwarded to the broker when it is back (``docs/reliability.md``).
"""
