"""The seed's HTTP API, served by the Faust worker's own web server (no second web framework).

    POST /learn                              outcomes -> Avro events on the outcomes topic (learn.py)
    GET  /learn/outcomes/properties          properties with stored outcomes
    GET  /learn/outcomes/{property_id}/stats the seed's stats from the parquet store (?as_of=)
    GET  /dashboard/overview                 totals and one line per property (?as_of=)
    GET  /dashboard/model-performance        the model registry's versions and metrics
    GET  /healthz                            broker reachable and partitions assigned (else 503)
    GET  /openapi.json                       the OpenAPI document of all of these (openapi.json)

Errors are JSON `{"success": false, "error": <code>, "message": <text>}` (plus `errors` listing the
invalid items of a POST). Storage reads run in a thread so the worker's event loop keeps consuming.
"""
from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web
from confluent_kafka import KafkaException
from faust.web import Request, Response, View

from consumers import dashboard, learn
from consumers.storage import OutcomesStorage, parse_as_of
from producers.topics import admin_client
from schemas.codec import default_codec
from schemas.errors import BrokerUnavailable, RegistryUnavailable, ValidationError
from schemas.settings import Settings
from schemas.validation import check_property_id
from schemas.wire import WireCodec

log = logging.getLogger("bookloop.http")
OPENAPI_PATH = Path(__file__).with_name("openapi.json")
RETRY_AFTER_SECONDS = 5
_HEALTH_TIMEOUT = 3.0
AS_OF_RANGE = (date(1970, 1, 2), date(9999, 1, 1))   # room for the windows counted back and forth


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers, extra

    def body(self) -> dict:
        return {"success": False, "error": self.code, "message": self.message, **self.extra}


class HttpApi:
    def __init__(self, app: Any, worker: Any, settings: Settings):
        self.app = app
        self.worker = worker
        self.settings = settings
        self.storage = OutcomesStorage(settings.data_dir)
        self.wire = WireCodec.for_topic(settings, settings.outcomes_topic, default_codec())
        self._admin = None

    async def post_learn(self, view: View, request: Request) -> Response:
        self._authorize(request)
        body = await read_body(request, self.settings.api_max_body_bytes)
        try:
            batch = await self._prepare(learn.parse_batch(body))
        except learn.BadBatch as exc:
            raise ApiError(400, exc.code, exc.message, errors=exc.errors) from None
        except RegistryUnavailable as exc:
            log.warning("POST /learn: %s", exc)
            raise ApiError(503, "registry_unavailable", f"{exc}; nothing was published: retry the same request",
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        try:
            await learn.publish(self.app, self.settings.outcomes_topic, batch, self.settings.delivery_timeout_seconds)
        except BrokerUnavailable as exc:
            log.warning("POST /learn: %s", exc)
            raise ApiError(503, "broker_unavailable", f"{exc}; some events may have been stored or not: retry "
                           "the same request (their event ids make retries safe)",
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        return view.json(learn.summary(batch))

    async def _prepare(self, items: list) -> list:
        if self.wire.registry is None:
            return learn.prepare_batch(items, self.wire)
        return await self._in_thread(learn.prepare_batch, items, self.wire)  # may ask the registry (HTTP)

    async def stats(self, view: View, request: Request, property_id: str) -> Response:
        as_of = query_as_of(request)
        try:
            check_property_id(property_id)
        except ValidationError:   # no such property can have landed
            raise ApiError(404, "unknown_property", f"no outcomes stored for property {property_id!r:.80}") from None
        stats = await self._in_thread(self.storage.get_statistics, property_id, as_of)
        if not stats["exists"]:
            raise ApiError(404, "unknown_property", f"no outcomes stored for property {property_id!r}")
        return view.json({"success": True, "property_id": property_id, "stats": stats})

    async def properties(self, view: View, request: Request) -> Response:
        found = await self._in_thread(self.storage.list_properties)
        return view.json({"success": True, "properties": found, "count": len(found)})

    async def overview(self, view: View, request: Request) -> Response:
        return view.json(await self._in_thread(dashboard.overview, self.storage, query_as_of(request)))

    async def model_performance(self, view: View, request: Request) -> Response:
        return view.json(await self._in_thread(dashboard.model_performance, self.settings.data_dir))

    async def healthz(self, view: View, request: Request) -> Response:
        reachable = await self._in_thread(self._broker_reachable)
        assigned = sorted(tp.partition for tp in self.worker.assigned)
        healthy = reachable and bool(assigned)
        return view.json({"status": "ok" if healthy else "unavailable", "broker_reachable": reachable,
                          "assigned_partitions": assigned}, status=200 if healthy else 503)

    async def openapi(self, view: View, request: Request) -> Response:
        return view.bytes(OPENAPI_PATH.read_bytes(), content_type="application/json")

    def _authorize(self, request: Request) -> None:
        token = self.settings.api_token
        if not token:
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8")):
            raise ApiError(401, "unauthorized", "POST /learn needs the header `Authorization: Bearer <token>` "
                           "(BOOKLOOP_API_TOKEN)", headers={"WWW-Authenticate": "Bearer"})

    def _broker_reachable(self) -> bool:
        if self._admin is None:
            self._admin = admin_client(self.settings)
        try:
            self._admin.list_topics(self.settings.outcomes_topic, timeout=_HEALTH_TIMEOUT)
            return True
        except KafkaException:
            return False

    async def _in_thread(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it exceeds `limit` bytes."""
    too_large = ApiError(413, "body_too_large", f"the body exceeds {limit} bytes (BOOKLOOP_API_MAX_BODY_BYTES); "
                         "send smaller batches")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def query_as_of(request: Request) -> date | datetime | None:
    """`?as_of=YYYY-MM-DD` (through the end of that day, UTC) or an ISO time with a timezone."""
    text = request.query.get("as_of")
    try:
        as_of = parse_as_of(text) if text else None
    except ValueError:
        raise ApiError(400, "as_of_invalid", f"as_of {text!r:.40} is neither YYYY-MM-DD nor an ISO time "
                       "with a timezone, e.g. 2017-08-31T00:00:00Z") from None
    day = as_of.date() if isinstance(as_of, datetime) else as_of
    if day is not None and not AS_OF_RANGE[0] <= day <= AS_OF_RANGE[1]:
        raise ApiError(400, "as_of_out_of_range", f"as_of {text!r:.40} must lie between "
                       f"{AS_OF_RANGE[0]} and {AS_OF_RANGE[1]}")
    return as_of


def _handler(fn: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """Turn ApiError into its JSON response and anything unexpected into a logged JSON 500."""
    @functools.wraps(fn)
    async def handle(view: View, request: Request, **match: Any) -> Response:
        try:
            return await fn(view, request, **match)
        except ApiError as exc:
            return view.json(exc.body(), status=exc.status, headers=exc.headers)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return view.json({"success": False, "error": "internal_error",
                              "message": "the server failed; see the worker log"}, status=500)
    return handle


def _page(app: Any, path: str, name: str, **methods: Callable) -> None:
    view = type(name, (View,), {method: _handler(fn) for method, fn in methods.items()})
    app.page(path, name=name)(view)


@web.middleware
async def _json_http_errors(request: web.Request, handler: Callable) -> web.StreamResponse:
    """aiohttp's own errors (unknown path 404, wrong method 405, ...) in the API's JSON shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response({"success": False, "error": code,
                                  "message": f"{request.method} {request.path}: {exc.reason}"},
                                 status=exc.status, headers=headers)


def register_http_api(app: Any, worker: Any, settings: Settings) -> HttpApi:
    """Register the API's pages on the Faust app (before it starts)."""
    app.web.web_app.middlewares.append(_json_http_errors)
    api = HttpApi(app, worker, settings)
    _page(app, "/learn", "learn", post=api.post_learn)
    _page(app, "/learn/outcomes/properties", "outcome_properties", get=api.properties)
    _page(app, "/learn/outcomes/{property_id}/stats", "outcome_stats", get=api.stats)
    _page(app, "/dashboard/overview", "dashboard_overview", get=api.overview)
    _page(app, "/dashboard/model-performance", "dashboard_model_performance", get=api.model_performance)
    _page(app, "/healthz", "healthz", get=api.healthz)
    _page(app, "/openapi.json", "openapi", get=api.openapi)
    return api
