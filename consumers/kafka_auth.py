"""The Faust worker's Kafka security (aiokafka), from the same settings as the librdkafka clients."""
from __future__ import annotations

import faust

from schemas.kafka_client import ssl_context
from schemas.settings import Settings


def broker_credentials(settings: Settings) -> faust.auth.Credentials | None:
    """None for PLAINTEXT; TLS and/or SASL (PLAIN, SCRAM-SHA-256/512) credentials otherwise."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    # with a context Faust speaks SASL_SSL, without one SASL_PLAINTEXT
    return faust.SASLCredentials(username=settings.kafka_sasl_username, password=settings.kafka_sasl_password,
                                 ssl_context=context, mechanism=settings.kafka_sasl_mechanism)
