"""The published contract of ``zenoti.enriched`` (``docs/contract.md``).

- ``json_schemas``: JSON Schema 2020-12 of every handler's input and output, with stable ids.
- ``asyncapi``: an AsyncAPI 3.0.0 document of the deployment as installed.
- ``cloudevents``: the CloudEvents 1.0 AMQP binding's application properties of an output.

Below the worker (its dispatcher calls ``cloudevents``): the handlers are given, never found
here; the command line finds them (``processor.cli``).
"""
