"""Confluent Schema Registry: schema ids for producers, writer schemas for the worker.

Producers look up the current schema under the subject `<topic>-value` (TopicNameStrategy) and
register it there when it is new, after setting the subject's compatibility to BACKWARD (a new
reader schema must read data written with the older ones, which is how the worker resolves).
The worker fetches a writer schema by id once and keeps it (ids are immutable).

One client per registry URL and process (`registry_client`): `mock://…` URLs give the client
library's in-memory registry, whose state is per client instance, so everything in one process
that names the same mock URL shares it.
"""
from __future__ import annotations

import functools
import json
import logging
import threading
import time
from urllib.parse import urlsplit

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.schema_registry_client import ConfigCompatibilityLevel, ServerConfig

from schemas.errors import CodecError, RegistryUnavailable
from schemas.settings import Settings

log = logging.getLogger(__name__)

COMPATIBILITY = ConfigCompatibilityLevel.BACKWARD
_UNKNOWN_ID_TTL = 60.0   # seconds an unknown id is remembered as unknown (a flood of bad messages)
_REQUEST_TIMEOUT = 10    # seconds per HTTP request


def registry_client(url: str, user_info: str = "") -> SchemaRegistryClient:
    """The process-wide client of the registry at `url` (a `mock://` URL: the in-memory registry)."""
    return _client(url, user_info)


@functools.cache
def _client(url: str, user_info: str) -> SchemaRegistryClient:
    conf = {"url": url, "timeout": _REQUEST_TIMEOUT}
    if user_info:
        conf["basic.auth.user.info"] = user_info
    try:
        return SchemaRegistryClient.new_client(conf)
    except (ValueError, TypeError) as exc:
        raise RegistryUnavailable(f"SCHEMA_REGISTRY_URL={safe_url(url)!r} is not usable: {exc}") from None


def safe_url(url: str) -> str:
    """`url` without user:password, for messages."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()


class SchemaRegistry:
    """Schema ids by (subject, schema) and writer schemas by id, both cached."""

    def __init__(self, settings: Settings):
        self.url = safe_url(settings.schema_registry_url)
        user_info = settings.schema_registry_user_info
        self._secrets = [secret for secret in (user_info, user_info.partition(":")[2],
                                               urlsplit(settings.schema_registry_url).password) if secret]
        self.client = registry_client(settings.schema_registry_url, settings.schema_registry_user_info)
        self._ids: dict[tuple[str, str], int] = {}
        self._writers: dict[int, dict] = {}
        self._unknown: dict[int, float] = {}
        self._lock = threading.Lock()

    def schema_id(self, subject: str, schema_str: str) -> int:
        """The id of `schema_str` under `subject`, registered (BACKWARD compatibility) if new."""
        key = (subject, schema_str)
        if key not in self._ids:
            with self._lock:
                if key not in self._ids:
                    self._ids[key] = self._look_up_or_register(subject, Schema(schema_str, "AVRO"))
        return self._ids[key]

    def _look_up_or_register(self, subject: str, schema: Schema) -> int:
        try:
            return self.client.lookup_schema(subject, schema).schema_id
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:
                raise self._unavailable(f"looking up subject {subject!r}", exc) from None
        except Exception as exc:  # httpx transport errors: connection refused, timeouts, TLS
            raise self._unavailable(f"looking up subject {subject!r}", exc) from None
        try:
            self.client.set_config(subject, ServerConfig(compatibility=COMPATIBILITY))
            schema_id = self.client.register_schema(subject, schema)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:
                raise RegistryUnavailable(
                    f"the registry at {self.url} refused the schema for {subject!r} as not {COMPATIBILITY} "
                    f"compatible with the registered versions ({exc.error_message}); make the change backward "
                    "compatible (new fields need defaults) or use a new topic") from None
            raise self._unavailable(f"registering a schema under {subject!r}", exc) from None
        except Exception as exc:
            raise self._unavailable(f"registering a schema under {subject!r}", exc) from None
        log.info("registered the schema of %s in %s as id %d", subject, self.url, schema_id)
        return schema_id

    def writer_schema(self, schema_id: int) -> dict:
        """The writer schema with `schema_id` as JSON; CodecError `unknown_schema_id` or
        `registry_unavailable` when it cannot be had."""
        if schema_id in self._writers:
            return self._writers[schema_id]
        if time.monotonic() - self._unknown.get(schema_id, float("-inf")) < _UNKNOWN_ID_TTL:
            raise _unknown_id(schema_id, self.url)
        try:
            schema = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                self._unknown[schema_id] = time.monotonic()
                raise _unknown_id(schema_id, self.url) from None
            raise CodecError(str(self._unavailable(f"fetching schema id {schema_id}", exc)),
                             reason="registry_unavailable") from None
        except Exception as exc:
            raise CodecError(str(self._unavailable(f"fetching schema id {schema_id}", exc)),
                             reason="registry_unavailable") from None
        if schema.schema_type not in (None, "AVRO"):
            raise CodecError(f"schema id {schema_id} in {self.url} is a {schema.schema_type} schema, not Avro",
                             reason="wrong_schema")
        self._writers[schema_id] = json.loads(schema.schema_str)
        return self._writers[schema_id]

    def _unavailable(self, doing: str, exc: Exception) -> RegistryUnavailable:
        detail = str(exc) if isinstance(exc, SchemaRegistryError) else f"{type(exc).__name__}: {exc}"
        for secret in self._secrets:
            detail = detail.replace(secret, "***")
        return RegistryUnavailable(f"Schema Registry at {self.url} failed while {doing}: {detail}")


def _unknown_id(schema_id: int, url: str) -> CodecError:
    return CodecError(f"schema id {schema_id} is not in the Schema Registry at {url}; the producer used "
                      "another registry, or the schema was deleted", reason="unknown_schema_id")
