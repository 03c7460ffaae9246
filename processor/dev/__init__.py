"""The development kit: the Zenoti sandbox, the webhook simulator and its deliveries, a private
RabbitMQ node and ``zenoti-events up``'s stack.

Ships in the wheel (``processor.testing`` and ``zenoti-events up`` need it, and it adds no
dependency), but no runtime module imports it: the import contract in ``pyproject.toml`` says so,
and only ``processor.cli`` imports it, to offer ``up``, ``sandbox``, ``simulate`` and
``new-handler``.
"""
