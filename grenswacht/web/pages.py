"""The pages of the web UI: overview, application, alerts, findings, vantage points, and
the forms (log in, acknowledge an alert).

Every handler reads through :mod:`grenswacht.web.data` in a worker thread
(``grenswacht.server.api.call``: storage errors become 503/400 answers) and renders a
template (:func:`grenswacht.web.templating.render_page`). Pages are ``read`` (token needed
off loopback, the session cookie accepted); the acknowledge form is ``write`` (session
cookie or bearer token) and checks its CSRF token before it acts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from grenswacht.server.api import call, form_fields
from grenswacht.server.auth import token_matches
from grenswacht.server.security import guard
from grenswacht.web import data
from grenswacht.web.labels import AT_RISK, CRITICALITY_LABELS
from grenswacht.web.pictures import Pictures, for_page
from grenswacht.web.templating import render_page
from schemas.errors import RenderError
from schemas.findings import FINDING_KINDS
from schemas.store import Store

PICTURES = Pictures()
_RANKS = {c: i for i, c in enumerate(CRITICALITY_LABELS)}
MAX_TEXT = 500


def _store(request: Request) -> Store:
    return request.app.state.backend.store  # type: ignore[no-any-return]


def _local(path: str | None, default: str = "/") -> str:
    """A redirect target on this site only (``/x``, not ``//host`` or ``https://``)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return default
    return path


def _overview(store: Store, municipality: str, criticality: str, verdict: str
              ) -> dict[str, Any]:
    states = data.current_applications(store)
    municipalities = sorted({m for s in states for m in s.municipalities}, key=str.casefold)
    shown = [s for s in states
             if (not municipality or municipality in s.municipalities)
             and (not criticality or s.criticality == criticality)
             and (not verdict or s.verdict == verdict)]
    shares = data.shares_by_municipality(states)
    if municipality:
        shares = {m: v for m, v in shares.items() if m == municipality}
    counts = {m: sum(1 for s in states if s.measured and (
        m in s.municipalities or (not m and not s.municipalities))) for m in shares}
    return {
        "states": shown, "at_risk": [s for s in shown if s.verdict in AT_RISK],
        "others": [s for s in shown if s.verdict not in AT_RISK],
        "municipalities": municipalities, "shares": shares, "counts": counts,
        "coverage": data.coverage(store, shown), "freshness": data.freshness(store),
        "criticalities": sorted({s.criticality for s in states if s.criticality},
                                key=lambda c: (_RANKS.get(c, len(_RANKS)), c)),
        "classes": [*data.CLASSES, data.NOT_MEASURED],
        "filters": {"municipality": municipality, "criticality": criticality,
                    "verdict": verdict},
    }


@guard("read", session=True)
async def overview(request: Request) -> Response:
    q = request.query_params
    context = await call(request, _overview, _store(request),
                         q.get("municipality", "")[:MAX_TEXT],
                         q.get("criticality", "")[:MAX_TEXT], q.get("verdict", "")[:MAX_TEXT])
    return render_page(request, "overview.html", active="overview", **context)


def find_state(store: Store, name: str) -> data.ApplicationState | None:
    return next((s for s in data.current_applications(store) if s.application == name), None)


def _axes(path_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the stored path verdicts say on each axis, counted (for the words on top)."""
    physical = Counter(str(p["destination_country"] or "") for p in path_rows)
    legal = Counter((str(p["destination_operator"] or ""), str(p["legal_country"] or ""))
                    for p in path_rows)
    via_us = sum(1 for p in path_rows if p["us_hops"])
    return {"physical": physical.most_common(), "legal": legal.most_common(),
            "via_us": via_us, "total": len(path_rows)}


def _application(store: Store, name: str, language: str) -> dict[str, Any] | None:
    state = find_state(store, name)
    if state is None:
        return None
    path_rows = data.paths(store, state)
    addresses = sorted(set(data.destinations(path_rows)) | set(state.addresses))
    try:
        picture = PICTURES.picture(store, state, "svg", language, id_prefix="app")
        picture_error = ""
    except RenderError as exc:  # e.g. Graphviz missing: the rest of the page still shows
        picture, picture_error = None, str(exc)
    return {
        "state": state, "paths": path_rows[:50], "path_total": len(path_rows),
        "axes": _axes(data.home(path_rows, state)), "dns": data.dns_answers(store, state),
        "hops": data.hops(store, addresses),
        "findings": data.findings(store, application=name, addresses=addresses, limit=50),
        "alerts": data.alerts(store, application=name, limit=50),
        "picture": for_page(str(picture)) if picture else "", "picture_error": picture_error,
    }


def _language(request: Request) -> str:
    from grenswacht.web.i18n import negotiate

    return negotiate(request.query_params.get("lang"), request.cookies.get("gw_lang"))[0]


@guard("read", session=True)
async def application(request: Request) -> Response:
    name = request.path_params["name"]
    context = await call(request, _application, _store(request), name, _language(request))
    if context is None:
        return render_page(request, "missing.html", status_code=404, name=name)
    return render_page(request, "application.html", active="overview", **context)


@guard("read", session=True)
async def picture(request: Request) -> Response:
    name, fmt = request.path_params["name"], request.path_params["format"]
    if fmt not in ("svg", "png"):
        raise HTTPException(404, "pictures are .svg or .png")
    store = _store(request)
    state = await call(request, find_state, store, name)
    drawn = None if state is None else await call(
        request, PICTURES.picture, store, state, fmt, _language(request), "picture")
    if drawn is None:
        raise HTTPException(404, f"no picture of {name!r}: nothing measured towards it")
    media = "image/png" if fmt == "png" else "image/svg+xml"
    body = drawn if isinstance(drawn, bytes) else drawn.encode()
    filename = quote(f"{name}.{fmt}")
    return Response(body, media_type=media,
                    headers={"content-disposition": f"inline; filename*=UTF-8''{filename}"})


def _raw(store: Store, name: str) -> list[dict[str, Any]] | None:
    if find_state(store, name) is None:
        return None
    return data.raw_results(store, name)


@guard("read", session=True)
async def raw(request: Request) -> Response:
    """The stored RIPE Atlas results behind the application's paths, as JSON."""
    import orjson

    from grenswacht.render import plain

    name = request.path_params["name"]
    rows = await call(request, _raw, _store(request), name)
    if rows is None:
        raise HTTPException(404, f"no application {name!r}")
    for row in rows:
        payload = row["payload"]
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        try:
            row["payload"] = orjson.loads(text)
        except orjson.JSONDecodeError:
            row["payload"] = text
    document = {"application": name, "results": [plain(r) for r in rows],
                "note": "source: RIPE NCC, RIPE Atlas (payloads as received)"}
    return Response(orjson.dumps(document, option=orjson.OPT_INDENT_2),
                    media_type="application/json")


@guard("read", session=True)
async def alerts(request: Request) -> Response:
    state = request.query_params.get("state", "")
    state = state if state in ("firing", "resolved") else ""
    rows = await call(request, lambda: data.alerts(_store(request), state=state))
    return render_page(request, "alerts.html", active="alerts", alerts=rows, state=state)


@guard("write", session=True)
async def acknowledge(request: Request) -> Response:
    form = await form_fields(request)
    request.app.state.csrf.verify(request, form)
    alert_id = form.get("alert_id", "").strip()[:MAX_TEXT]
    by = form.get("by", "").strip()[:MAX_TEXT]
    if not alert_id or not by:
        raise HTTPException(400, "the form needs the alert and your name")
    done = await call(request, request.app.state.backend.ack_alert, alert_id, by,
                      form.get("comment", "").strip()[:MAX_TEXT])
    target = _local(form.get("next"), "/alerts")
    return RedirectResponse(f"{target}#alert-{quote(done['alert_id'])}", status_code=303)


FINDINGS_SHOWN = 200


def _findings(store: Store, kind: str) -> dict[str, Any]:
    return {"findings": data.findings(store, [kind] if kind else [], limit=FINDINGS_SHOWN),
            "counts": data.finding_counts(store)}


@guard("read", session=True)
async def findings(request: Request) -> Response:
    kind = request.query_params.get("kind", "")
    kind = kind if kind in FINDING_KINDS else ""
    context = await call(request, _findings, _store(request), kind)
    return render_page(request, "findings.html", active="findings", kind=kind,
                       kinds=FINDING_KINDS, **context)


@guard("read", session=True)
async def vantage_points(request: Request) -> Response:
    rows = await call(request, data.vantage_points, _store(request))
    return render_page(request, "vantage_points.html", active="vantage_points",
                       vantage_points=rows)


def _map(store: Store, name: str, bounds: bool, language: str) -> dict[str, Any]:
    from grenswacht.web import worldmap
    from grenswacht.web.i18n import gettext_for

    _ = gettext_for(language).gettext
    shapes, us = worldmap.natural_earth()
    state = find_state(store, name) if name else None
    addresses: list[str] = []
    points = data.vantage_points(store)
    if state is not None:
        path_rows = data.paths(store, state, limit=5000)
        addresses = sorted(set(data.destinations(path_rows)) | set(state.addresses))
        used = {str(p["vantage_key"]) for p in path_rows}
        points = [p for p in points if p["vantage_key"] in used]
    vantages = [worldmap.Marker(float(p["latitude"]), float(p["longitude"]),
                                f"{p['vantage_key']} ({p['country']})", 3.5)
                for p in points if p["paths"]]
    hops = []
    counts = data.hop_countries(store, addresses) if state is not None or not name else {}
    for code, n in counts.items():
        where = worldmap.representative(shapes[code]) if code in shapes else None
        if where is not None:
            hops.append(worldmap.Marker(*where, _("%(country)s: %(n)s hops") % {
                "country": code, "n": n}, size=min(14.0, 3 + n ** 0.5), us=code in us))
    circles = [worldmap.Bound(float(b["latitude"]), float(b["longitude"]),
                              float(b["bound_km"]), _("%(address)s: within %(km)s km of "
                              "%(vantage)s") % {"address": b["reply_address"],
                                                "km": round(b["bound_km"]),
                                                "vantage": b["vantage_key"]})
               for b in data.us_bounds(store, addresses)] if bounds and addresses else []
    title = _("Vantage points and hops: %(what)s") % {
        "what": state.application if state is not None else _("every application")}
    svg = worldmap.draw(shapes, us, vantages=vantages, hops=hops, bounds=circles, title=title,
                        labels={"vantage": _("vantage point"),
                                "hops": _("hops in a country (size: how many)"),
                                "us": _("US territory; US hops in red")})
    return {"svg": svg, "state": state, "name": name, "bounds": bounds,
            "applications": [s.application for s in data.current_applications(store)],
            "countries": sorted(counts.items(), key=lambda kv: -kv[1]), "us": us,
            "vantage_count": len(vantages), "bound_count": len(circles)}


@guard("read", session=True)
async def world_map(request: Request) -> Response:
    q = request.query_params
    from grenswacht.web.worldmap import shapes_missing

    missing = shapes_missing()
    if missing:
        return render_page(request, "map.html", active="map", status_code=503,
                           problem=missing)
    context = await call(request, _map, _store(request), q.get("application", "")[:MAX_TEXT],
                         q.get("bounds") == "1", _language(request))
    return render_page(request, "map.html", active="map", **context)


@guard("open")
async def login_form(request: Request) -> Response:
    return render_page(request, "login.html", next=_local(request.query_params.get("next")))


@guard("open")
async def login(request: Request) -> Response:
    form = await form_fields(request)
    request.app.state.csrf.verify(request, form)
    target = _local(form.get("next"))
    if not token_matches(request.app.state.policy.token, form.get("token")):
        return render_page(request, "login.html", status_code=401, next=target, wrong=True)
    response = RedirectResponse(target, status_code=303)
    request.app.state.sessions.set_cookie(response)
    return response
