"""The Zenoti API as zenoti-events asks it: one concern, one noun per module.

=================  ===========================================================================
module             owns
=================  ===========================================================================
``client``         ``ZenotiClient``: one tenant's calls, their deadlines, errors and retries
``clients``        ``ZenotiClients``: every tenant's client over one pool, budget, cache
``budget``         ``Budget`` and the in-process ``TokenBucket``
``shared_budget``  ``RedisBudget``: one tenant's budget shared by every pod
``cache``          answers kept per kind of resource
``coalesce``       one call for identical requests in flight
``snapshots``      centers' members and guests, a page of 100 at a time: when and how
``snapshot_store`` where snapshots live (Redis or memory)
=================  ===========================================================================
"""

from processor.zenoti.client import ZenotiClient
from processor.zenoti.clients import ZenotiClients

__all__ = ["ZenotiClient", "ZenotiClients"]
