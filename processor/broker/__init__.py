"""RabbitMQ: the confirmed publisher (the only confirm-publish path), the topology and queue
naming, the ``Publisher``/``IncomingMessage`` protocols, and ``memory``, an in-memory broker for
unit tests of dispatch, retry and de-duplication.
"""
