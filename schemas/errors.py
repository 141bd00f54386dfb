"""The project's exception tree: one root, a few meaningful branches."""


class BookloopError(Exception):
    """Root of every error bookloop raises on purpose."""


class ConfigError(BookloopError):
    """A setting or flag has an invalid value."""


class CodecError(BookloopError):
    """Bytes could not be decoded as a known Avro event. `reason` is the dead-letter reason code."""

    reason = "undecodable"

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ValidationError(BookloopError):
    """A decoded event breaks a rule. `reason` is a short stable code used as the DLQ reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class BrokerUnavailable(BookloopError):
    """Kafka could not be reached or did not acknowledge in time."""


class DeliveryError(BookloopError):
    """The broker refused or timed out messages we produced."""


class RegistryUnavailable(BookloopError):
    """The Schema Registry could not be reached, refused us, or rejected a schema."""
