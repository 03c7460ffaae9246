"""RabbitMQ: the confirmed publisher (the one confirm-publish path of the messages zenoti-events
makes; the parking lots' copies of parked messages keep to their own channel, see
``processor.ops.parking``), the topology and queue naming, the ``Publisher``/``IncomingMessage``
protocols, and ``memory``, an in-memory broker for unit tests of dispatch, retry and
de-duplication (its messages and publisher in ``memory_client``).
"""
