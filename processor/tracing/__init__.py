"""OpenTelemetry tracing of one event from webhook to output (``docs/observability.md``).

Off by default: ``start`` returns ``None`` unless the standard ``OTEL_*`` variables ask for
tracing (``processor.tracing.provider``), and every traced path in the ingress, the worker and
the Zenoti client is behind one ``if tracer is None`` check, so an untraced process pays that
and nothing else (no provider, no span objects, no headers added).

On, one trace per delivery:

    POST /webhooks/zenoti (SERVER, ingress; continues a verified sender's traceparent)
    └── process zenoti.h.<handler> (CONSUMER, worker; one per attempt, linked to the first)
        ├── GET <endpoint> (CLIENT, one per Zenoti request, retries included)
        └── publish zenoti.enriched (PRODUCER; its context in the output's headers)

The context travels in the AMQP headers ``traceparent``/``tracestate``
(``processor.tracing.carrier``), through the spool, the delay queues and the parking lots.
"""

from processor.tracing.provider import Tracing, start, wanted

__all__ = ["Tracing", "start", "wanted"]
