"""The RIPE Atlas seam: every call to ripe-atlas-cousteau (and so requests and
websocket-client) goes through here, and their failures become our errors here, once:

* HTTP 401/403 -> :class:`~schemas.errors.AtlasAuthError` naming the permission the call
  needs (RIPE Atlas API keys hold permissions such as "Create a new user defined
  measurement"); no key at all -> the same error, saying how to configure one;
* HTTP 429, 5xx, connection failures -> :class:`~schemas.errors.AtlasRateLimited` with
  ``retry_after`` (the ``Retry-After`` header when the server sent one); the client retries
  those itself up to ``max_retries`` times, sleeping ``retry_after`` (capped at
  ``retry_max_s``) in between;
* any other refusal -> :class:`~schemas.errors.AtlasAPIError` with the server's detail.

The API key is a :class:`~pydantic.SecretStr` until the moment cousteau builds the
``Authorization`` header; it never appears in ``repr()``, logs or error messages (server
text is scrubbed of it too).

(Longer than the usual ~400 lines on purpose: it is the one seam for REST *and* stream, so
every foreign exception stays in this file.)
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
import websocket
from pydantic import SecretStr
from ripe.atlas.cousteau import (
    AtlasCreateRequest,
    AtlasLatestRequest,
    AtlasRequest,
    AtlasResultsRequest,
    AtlasSource,
    AtlasStopRequest,
    AtlasStream,
    Dns,
    Ping,
    Traceroute,
)
from ripe.atlas.cousteau.measurement import MalFormattedMeasurement
from ripe.atlas.cousteau.source import MalFormattedSource

from scheduler.rawjson import split_array
from scheduler.settings import AtlasSettings
from schemas.errors import AtlasAPIError, AtlasAuthError, AtlasRateLimited, ConfigError
from schemas.retry import RetryPolicy, parse_retry_after

LOG = logging.getLogger(__name__)

PERMISSION_CREATE = "Create a new user defined measurement"
PERMISSION_STOP = "Stop a measurement"
PERMISSION_LIST = "List your measurements"
PERMISSION_RESULTS = "Get results from non-public measurements"

_KINDS = {"traceroute": Traceroute, "dns": Dns, "ping": Ping}


class StreamDisconnected(AtlasAPIError):
    """The result stream closed; reconnect and backfill the gap from REST."""


def create_body(
    definitions: Sequence[tuple[str, dict[str, Any]]],
    sources: Sequence[dict[str, Any]],
    is_oneoff: bool,
) -> dict[str, Any]:
    """The exact JSON body cousteau POSTs for these definitions (built, not sent)."""
    request = AtlasCreateRequest(
        measurements=_measurements(definitions), sources=_sources(sources), is_oneoff=is_oneoff
    )
    try:
        request._construct_post_data()
    except (MalFormattedMeasurement, MalFormattedSource) as exc:
        raise AtlasAPIError(f"invalid measurement definition: {exc}") from None
    body: dict[str, Any] = request.post_data
    return body


def _measurements(definitions: Sequence[tuple[str, dict[str, Any]]]) -> list[Any]:
    return [_KINDS[kind](**options) for kind, options in definitions]


def _sources(sources: Sequence[dict[str, Any]]) -> list[AtlasSource]:
    try:
        return [AtlasSource(**source) for source in sources]
    except MalFormattedSource as exc:
        raise AtlasAPIError(f"invalid probe selection: {exc}") from None


def _timestamp(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).replace(tzinfo=None)


class _Recording:
    """Mixin over cousteau's request classes: keep the response (status, headers, raw
    text) or the requests exception that cousteau otherwise flattens, and add a timeout."""

    response: requests.Response | None = None
    error: requests.RequestException | None = None

    def get_http_method(self, method: str) -> requests.Response:
        self.response, self.error = None, None
        self.http_method_args["timeout"] = self.timeout  # type: ignore[attr-defined]
        try:
            self.response = super().get_http_method(method)  # type: ignore[misc]
        except requests.RequestException as exc:
            self.error = exc
            raise
        return self.response


class _Get(_Recording, AtlasRequest):  # type: ignore[misc]
    pass


class _Create(_Recording, AtlasCreateRequest):  # type: ignore[misc]
    pass


class _Stop(_Recording, AtlasStopRequest):  # type: ignore[misc]
    pass


class _Results(_Recording, AtlasResultsRequest):  # type: ignore[misc]
    pass


class _Latest(_Recording, AtlasLatestRequest):  # type: ignore[misc]
    pass


class AtlasClient:
    """RIPE Atlas REST calls with retries and mapped errors. Build with :func:`open_atlas`."""

    def __init__(
        self,
        settings: AtlasSettings,
        api_key: SecretStr | None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._key = api_key
        self._sleep = sleep
        base = urlsplit(settings.base_url)
        if base.scheme != "https" or not base.netloc or base.path not in ("", "/"):
            raise ConfigError(
                f"atlas.base_url must be https://host[:port], not {settings.base_url!r}"
            )
        self.server = base.netloc
        ca = settings.ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE")
        self.verify: bool | str = str(ca) if ca else True
        self.retries = 0  # 429/5xx retries done, for status and tests
        # the one retry policy (schemas/retry.py): waits what the server asks (Retry-After)
        # or the backoff, capped at retry_max_s; max_retries retries after the first call
        self._retry = RetryPolicy(initial_s=1.0, max_s=settings.retry_max_s,
                                  attempts=settings.max_retries + 1)

    def __repr__(self) -> str:
        key = "set" if self._key is not None else "none"
        return f"AtlasClient(base_url={self.settings.base_url!r}, api_key={key})"

    # -- plumbing --------------------------------------------------------------------------
    def _common(self, with_key: bool = True) -> dict[str, Any]:
        key = self._key.get_secret_value() if (with_key and self._key is not None) else None
        return {
            "server": self.server,
            "verify": self.verify,
            "key": key,
            "user_agent": "grenswacht (ripe-atlas-cousteau)",
        }

    def _redact(self, text: str) -> str:
        if self._key is not None and self._key.get_secret_value():
            text = text.replace(self._key.get_secret_value(), "**********")
        return text

    def _call(
        self,
        make: Callable[[], Any],
        send: Callable[[Any], tuple[bool, Any]],
        what: str,
        permission: str | None,
    ) -> Any:
        writes = (PERMISSION_CREATE, PERMISSION_STOP, PERMISSION_LIST)
        if permission in writes and self._key is None:
            raise AtlasAuthError(
                f"{what} needs a RIPE Atlas API key with the permission {permission!r}: set "
                "GRENSWACHT_ATLAS__API_KEY or atlas.api_key_file"
            )
        attempts = [0]

        def once() -> Any:
            request = make()
            request.timeout = self.settings.http_timeout_s
            ok, payload = send(request)
            attempts[0] += 1
            return self._check(request, ok, payload, what, permission, attempts[0] - 1)

        def retrying(error: BaseException, seconds: float, failures: int) -> None:
            LOG.warning("%s; retrying in %.1f s", error, seconds)
            self.retries += 1

        return self._retry.call(once, retry_on=(AtlasRateLimited,), on_retry=retrying,
                                sleep=self._sleep)

    def _check(
        self,
        request: Any,
        ok: bool,
        payload: Any,
        what: str,
        permission: str | None,
        attempt: int,
    ) -> Any:
        backoff = self._retry.delay(attempt + 1)
        error = request.error
        if error is not None:
            if isinstance(error, requests.exceptions.SSLError):
                raise AtlasAPIError(
                    f"{what}: TLS verification of {self.settings.base_url} failed "
                    "(set atlas.ca_bundle or REQUESTS_CA_BUNDLE for a private CA)"
                ) from None
            raise AtlasRateLimited(
                f"{what}: RIPE Atlas at {self.settings.base_url} unreachable "
                f"({type(error).__name__})",
                retry_after=backoff,
            ) from None
        response: requests.Response = request.response
        status = response.status_code
        if ok:
            return response
        detail = self._redact(_detail(payload))[:500]
        if status == 429 or status >= 500:
            asked = parse_retry_after(response.headers.get("Retry-After"))
            retry_after = backoff if asked is None else asked
            raise AtlasRateLimited(
                f"{what}: RIPE Atlas answered HTTP {status}"
                f"{' (rate limited)' if status == 429 else ''}: {detail}",
                retry_after=retry_after,
            )
        if status in (401, 403):
            needed = permission or "read access"
            if self._key is None:
                raise AtlasAuthError(
                    f"{what}: RIPE Atlas needs an API key with the permission "
                    f"{needed!r} (HTTP {status}: {detail})"
                )
            raise AtlasAuthError(
                f"{what}: RIPE Atlas refused the configured API key (HTTP {status}): it is "
                f"invalid, disabled or lacks the permission {needed!r}. Server said: {detail}"
            )
        raise AtlasAPIError(f"{what}: RIPE Atlas rejected the request (HTTP {status}): {detail}")

    def _paged(
        self, path: str, params: dict[str, Any], what: str, permission: str | None
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        url: str | None = path
        query: dict[str, Any] = dict(params)
        while url:
            response = self._call(
                partial(_Get, url_path=url, **self._common()),
                partial(_get_with, params=query),
                what,
                permission,
            )
            page = response.json()
            out.extend(page.get("results", []))
            nxt = page.get("next")
            url = None
            if nxt:
                parts = urlsplit(nxt)
                url = f"{parts.path}?{parts.query}" if parts.query else parts.path
                query = {}
        return out

    # -- the calls -------------------------------------------------------------------------
    def create(
        self,
        definitions: Sequence[tuple[str, dict[str, Any]]],
        sources: Sequence[dict[str, Any]],
        is_oneoff: bool,
    ) -> list[int]:
        """Create measurements sharing ``sources``; return their ids in definition order."""
        response = self._call(
            lambda: _Create(
                measurements=_measurements(definitions),
                sources=_sources(sources),
                is_oneoff=is_oneoff,
                **self._common(),
            ),
            lambda r: r.create(),
            "creating measurements",
            PERMISSION_CREATE,
        )
        return [int(i) for i in response.json()["measurements"]]

    def stop(self, measurement_id: int) -> None:
        self._call(
            lambda: _Stop(msm_id=measurement_id, **self._common()),
            lambda r: r.create(),
            f"stopping measurement {measurement_id}",
            PERMISSION_STOP,
        )

    def my_measurements(self, tag: str) -> list[dict[str, Any]]:
        """This key's owner's running measurements carrying ``tag``."""
        return self._paged(
            "/api/v2/measurements/my/",
            {"tags": tag, "status__in": "0,1,2", "page_size": 500},
            f"listing measurements tagged {tag!r}",
            PERMISSION_LIST,
        )

    def probes(self, **filters: Any) -> list[dict[str, Any]]:
        """Probe objects matching API filters (``country_code``, ``asn_v4``, ``tags``...)."""
        return self._paged("/api/v2/probes/", filters, "listing probes", None)

    def results(
        self, measurement_id: int, start: int | None = None, stop: int | None = None
    ) -> list[tuple[dict[str, Any], bytes]]:
        """Results with ``start <= timestamp <= stop``: ``(parsed, raw bytes)`` each."""
        response = self._call(
            lambda: _Results(
                msm_id=measurement_id,
                start=_timestamp(start),
                stop=_timestamp(stop),
                **self._common(),
            ),
            lambda r: r.create(),
            f"fetching results of measurement {measurement_id}",
            PERMISSION_RESULTS,
        )
        return _raw_results(response)

    def latest(self, measurement_id: int) -> list[tuple[dict[str, Any], bytes]]:
        response = self._call(
            lambda: _Latest(msm_id=measurement_id, **self._common()),
            lambda r: r.create(),
            f"fetching latest results of measurement {measurement_id}",
            PERMISSION_RESULTS,
        )
        return _raw_results(response)

    def open_stream(self, measurement_ids: Sequence[int]) -> ResultStream:
        """Connect the result stream and subscribe to ``measurement_ids``."""
        stream = ResultStream(self.settings.stream_url, self.verify, self.settings.http_timeout_s)
        for msm in measurement_ids:
            stream.subscribe(AtlasStream.STREAM_TYPE_RESULT, msm=msm)
        stream.connect()
        return stream


def _get_with(request: Any, params: dict[str, Any]) -> tuple[bool, Any]:
    result: tuple[bool, Any] = request.get(**params)
    return result


def _raw_results(response: requests.Response) -> list[tuple[dict[str, Any], bytes]]:
    try:
        items = split_array(response.content.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AtlasAPIError(f"RIPE Atlas sent results that are not a JSON array: {exc}") from None
    return [(value, raw.encode()) for value, raw in items if isinstance(value, dict)]


def _detail(payload: Any) -> str:
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            parts = [str(error.get(k)) for k in ("title", "detail") if error.get(k)]
            parts += [str(e.get("detail", e)) for e in error.get("errors", []) if e]
            if parts:
                return "; ".join(parts)
        return json.dumps(payload)[:500]
    if isinstance(payload, (list, tuple)):
        return "; ".join(str(p) for p in payload)
    return str(payload)


class ResultStream(AtlasStream):  # type: ignore[misc]
    """cousteau's ``AtlasStream`` protocol (``atlas_subscribe`` / ``atlas_result`` frames)
    with a bounded connect, a CA bundle, and disconnects reported instead of hidden: the
    caller must know about a gap to backfill it."""

    def __init__(self, base_url: str, verify: bool | str, timeout: float) -> None:
        super().__init__(base_url=base_url)
        self._sslopt: dict[str, Any] = {}
        if isinstance(verify, str):
            self._sslopt = {"ca_certs": verify, "cert_reqs": ssl.CERT_REQUIRED}
        self._timeout = timeout

    def connect(self) -> None:
        try:
            self.ws = websocket.create_connection(
                self.url,
                header=self.headers,
                sslopt=self._sslopt,
                timeout=self._timeout,
                **self._get_proxy_options(),
            )
            for subscription in self.subscriptions:
                self.send(self.ws, self.EVENT_NAME_SUBSCRIBE, subscription)
        except (OSError, websocket.WebSocketException) as exc:
            self.ws = None  # type: ignore[assignment]
            raise StreamDisconnected(
                f"cannot connect to the RIPE Atlas stream {self.url}: {type(exc).__name__}: {exc}"
            ) from None

    def events(self, seconds: float) -> Iterator[tuple[str, Any, bytes]]:
        """``(event, payload, raw payload bytes)`` for ``seconds``; raises
        :class:`StreamDisconnected` when the connection drops."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.ws is None:
                raise StreamDisconnected("stream not connected")
            try:
                self.ws.settimeout(max(remaining, 0.01))
                text = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                return
            except (OSError, websocket.WebSocketException) as exc:
                self.close()
                raise StreamDisconnected(
                    f"RIPE Atlas stream dropped: {type(exc).__name__}"
                ) from None
            if isinstance(text, bytes):
                text = text.decode("utf-8")
            if not text:
                self.close()
                raise StreamDisconnected("RIPE Atlas stream closed")
            try:
                (name, _), (payload, raw) = split_array(text)[:2]
            except ValueError:
                LOG.warning("ignoring a stream frame that is not [event, payload]")
                continue
            yield str(name), payload, raw.encode()

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close(timeout=1)
            except (OSError, websocket.WebSocketException):
                pass
            finally:
                self.ws.shutdown()  # type: ignore[no-untyped-call]
        self.ws = None  # type: ignore[assignment]


def open_atlas(
    settings: AtlasSettings, *, sleep: Callable[[float], None] = time.sleep
) -> AtlasClient:
    """Resolve the key (environment, settings or key file) and build a client."""
    return AtlasClient(settings, settings.resolved_api_key(), sleep=sleep)
