"""The worker: consumes each enabled handler's queue, dispatches every message to its handler,
settles it by its fate (ack, delayed retry, park) and drops duplicates.

``consumer`` (the loop, reconnecting), ``dispatch`` (one message), ``retry`` (waiting in the
broker), ``dedupe`` (remembered keys), ``plugins`` (finding and checking handlers).
"""
