"""The dashboard pages (server-rendered HTML, a little vanilla JS for live updates).

Login with an org's API key: the key is checked once and never stored; the session cookie (signed,
HttpOnly, SameSite=Strict) holds the key id, org and role, and every request checks that the key is
still valid (a revoked key logs the session out) and that the session is younger than ``session_hours``
(counted from signing in, not from the last request). Every page queries the contract as the session's org,
so what a broker or an operator sees is what the contract lets it read."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import time
from functools import wraps
from urllib.parse import quote, urlencode

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from ipledger.gateway import moments
from ipledger.gateway.api.alerts import alerts_across
from ipledger.gateway.api.common import (ID_PATTERNS, IdentifierConverter, channel_param, is_customs, live,
                                          moment_param, path_id, state, visible_authorisations, whole)
from ipledger.gateway.api.feed import stream_response
from ipledger.gateway.auth import Principal
from ipledger.gateway.headers import secure
from ipledger.gateway.observability import REQUEST_ID_HEADER, request_id_from, route_label
from ipledger.gateway import problems
from ipledger.gateway.problems import Problem
from ipledger.gateway.dashboard import charts
from ipledger.gateway.dashboard.due import lot_status, validity_left

bp = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")
access_log = logging.getLogger("ipledger.gateway.access")

CHART_DAYS = 90   # the authorisation page's charts: the use of each ceiling over this many days at most

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@bp.after_app_request
def _headers(response):
    """Every response of the pages' app — its 404 and 405 pages and static files too, not only the routes
    this blueprint matched — with the security headers and the pages' CSP (:mod:`ipledger.gateway.headers`);
    a page is never cached."""
    secure(response, CSP)
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_errorhandler(HTTPException)
@bp.app_errorhandler(Problem)
def _error_page(error):
    """An error of a page as a dashboard page (navigation, sign-out), with the same status — not a bare
    framework page without a way back."""
    status = error.code if isinstance(error, HTTPException) else error.status
    if not status or status < 400:
        return error
    if request.endpoint == "dashboard.stream":  # an EventSource, not a page: problem+json
        return _problem_json(error, status)
    if isinstance(error, Problem):
        title, detail = error.title, error.detail
    elif status == 404:
        title, detail = "Not found", "There is no such page, or your organisation may not read it."
    else:
        title, detail = error.name, error.description
    principal = _principal()
    if principal is not None:
        g.csrf = session.setdefault("csrf", secrets.token_urlsafe(24))
    headers = error.headers if isinstance(error, Problem) else {}  # e.g. Retry-After of a 503
    if status == 405 and getattr(error, "valid_methods", None):   # every 405 names what the page allows
        headers = {**headers, "Allow": ", ".join(sorted(error.valid_methods))}
    # an id found on several holders' channels: the same page on each of them
    channels = (error.extra.get("channels") or []) if isinstance(error, Problem) and status == 409 else []
    asked = [(k, v) for k, v in request.args.items() if k != "channel"]   # the same question (period, dates) on each
    choices = [{"channel": c, "href": url_for(request.endpoint, **(request.view_args or {})) + "?" +
                urlencode([*asked, ("channel", c)])}
               for c in channels if isinstance(c, str)] if request.method == "GET" and request.endpoint else []
    return render_template("dashboard/error.html", principal=principal, status=status, title=title,
                           detail=detail, choices=choices), status, headers


def _problem_json(error, status: int):
    if not isinstance(error, Problem):
        error = problems.from_http_exception(error, "the dashboard session has ended: sign in again"
                                             if status == 401 else None)
    return problems.response(error, request_id_from(request.headers.get(REQUEST_ID_HEADER)))


def _session_seconds() -> float:
    return dt.timedelta(hours=state().config.session_hours).total_seconds()


def _principal() -> Principal | None:
    key_id = session.get("key_id")
    if not key_id:
        return None
    sid = session.get("sid")
    if not sid or live().store.session_ended(sid):   # signed out (the cookie may have been kept)
        session.clear()
        return None
    since = session.get("since")
    if not isinstance(since, (int, float)) or time.time() - since > _session_seconds():   # its lifetime is over
        session.clear()
        return None
    principal = state().keys.active(key_id)
    if principal is None or principal.org != session.get("org"):   # revoked (or another org's key since)
        session.clear()
        return None
    g.principal, g.key_id = principal, key_id
    return principal


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        principal = _principal()
        if principal is None:
            if request.path.endswith("/stream"):
                abort(401)
            return redirect(url_for("dashboard.login", next=request.script_root + request.path))
        g.csrf = session.setdefault("csrf", secrets.token_urlsafe(24))
        return view(principal, *args, **kwargs)
    return wrapper


def same_token(sent: str | None, expected: str | None) -> bool:
    """Whether a form's token is the session's, in constant time — compared as bytes: ``hmac.compare_digest``
    refuses (TypeError, a 500) a text with a non-ASCII character, which a forged form may send."""
    return bool(expected) and hmac.compare_digest((sent or "").encode("utf-8", "surrogatepass"),
                                                  str(expected).encode("utf-8"))


def check_csrf() -> None:
    if not same_token(request.form.get("csrf", ""), session.get("csrf")):
        abort(400, "the form is stale; reload the page")


def ok_id(name: str, value: str) -> str:
    """``value`` when it is a well-formed ``name`` (an id of a page's path), else the page's 404."""
    if not re.match(ID_PATTERNS[name], value or ""):
        abort(404)
    return value


def evaluate(org: str, fn: str, *args, channel: str | None = None):
    """The contract's answer to ``fn`` as ``org`` (on ``channel``, the one a page's item was found on)."""
    return state().service.evaluate_json(org, fn, *args, channel=channel)


def page_item(org: str, fn: str, item_id: str) -> tuple[str | None, dict]:
    """(channel, answer) of a page's item, asked of the channel ``?channel=`` names (else of the one that knows it:
    an id on several holders' channels is the 409 page linking each); one ``org`` may not read is the page's 404,
    as one that does not exist."""
    try:
        return state().service.evaluate_where(org, fn, item_id, channel=request.args.get("channel") or None)
    except Problem as p:
        if p.status in (403, 404):
            abort(404)
        raise


def shown_channel(channel: str | None) -> str | None:
    """The channel a page names in its links: the one that answered, on a gateway of several channels only."""
    return channel if len(state().config.all_channels) > 1 else None


@bp.app_template_filter("utc")
def utc(text) -> str:
    """A date-time the contract wrote, to the second and named UTC (``2027-06-02 15:58:51 UTC``); a date as it is."""
    shown = moments.to_second(text)
    return f"{shown} UTC" if moments.parse(text) is not None else shown


# ------------------------------------------------------------------------------------------ login

@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form. Its token (``login_csrf``, in the session the form's page opened) must come back with
    the key: another site cannot post its own key from the user's browser and sign it in as another
    organisation (login CSRF)."""
    error, status = None, 200
    if request.method == "POST":
        presented = (request.form.get("api_key") or "").strip()
        expected = session.get("login_csrf")
        principal = None
        if not same_token(request.form.get("csrf", ""), expected):
            error, status = "The sign-in form has expired: sign in again.", 400
        else:
            principal = state().keys.authenticate(presented)
            if principal is None:
                error, status = "Unknown or revoked API key.", 401
        g.log_extra["outcome"] = "sign-in refused" if principal is None else "signed in"
        if principal is not None:
            g.key_id = principal.key_id   # the access line names the key that signed in (never the key itself)
            if session.get("sid"):    # a session this browser had ends: a copy of its cookie opens nothing more
                live().store.end_session(session["sid"], time.time() + _session_seconds())
            session.clear()
            session.permanent = True
            session.update(key_id=principal.key_id, org=principal.org, role=principal.role,
                           csrf=secrets.token_urlsafe(24), sid=secrets.token_urlsafe(16), since=int(time.time()))
            return redirect(_after_sign_in(request.args.get("next") or ""))
    g.csrf = session.setdefault("login_csrf", secrets.token_urlsafe(24))
    # sent here from a page (``next``): no session, or one that ended — its lifetime over (its cookie is gone with it),
    # signed out, its key revoked: the page says so
    return render_template("dashboard/login.html", error=error, ended=bool(request.args.get("next")),
                           hours=f"{state().config.session_hours:g}"), status


# where a sign-in may send the browser: a page of the dashboard, as login_required names it (printable ASCII, no
# backslash, no empty segment, none starting with a dot — plain or %2e — that a browser resolves, no query)
_NEXT = re.compile(r"/dashboard(/[A-Za-z0-9_~%:@!$&'()*+,;=-][A-Za-z0-9._~%:@!$&'()*+,;=-]*)*/?")


def _after_sign_in(target: str) -> str:
    """The page to go to after signing in: ``target`` (the ``next`` parameter) when it is one of the dashboard's
    own paths, else the index — never another site, and never a header value with a line break (a 500)."""
    if _NEXT.fullmatch(target) and not any(seg.lower().startswith("%2e") for seg in target.split("/")):
        root = request.script_root
        try:   # a page, not a form's address (a session that ended on a POST: a GET of it would be a 405)
            current_app.url_map.bind("localhost", script_name=root or None).match(
                target[len(root):] if root and target.startswith(root) else target, method="GET")
            return target
        except HTTPException:
            pass
    return url_for("dashboard.index")


@bp.app_context_processor
def _session_end() -> dict:
    """For the header: when the signed-in session ends (counted from signing in, not extended by use), and whether
    the signed-in organisation is this deployment's customs (the members page is theirs)."""
    since = session.get("since") if session.get("key_id") else None
    principal = g.get("principal")
    return {"session_ends": moments.text(since + _session_seconds()) if isinstance(since, (int, float)) else None,
            "signed_in_customs": principal is not None and is_customs(principal.org)}


@bp.post("/logout")
def logout():
    if session.get("key_id"):
        check_csrf()
        g.key_id = session.get("key_id")
        g.log_extra["outcome"] = "signed out"
        if session.get("sid"):
            live().store.end_session(session["sid"], time.time() + _session_seconds())
    session.clear()
    return redirect(url_for("dashboard.login"))


# ------------------------------------------------------------------------------------------ pages

@bp.get("/")
@login_required
def index(principal):
    rows, errors = [], []
    for auth_id in visible_authorisations(principal.org):
        try:  # an id on several holders' channels (a grant no gateway could refuse): a row each, naming it
            found = state().service.evaluate_each(principal.org, "GetAuthorisation", auth_id)
            for channel, auth in found:  # validity days from the ledger time GetBalances answered at, as on its page
                balances = evaluate(principal.org, "GetBalances", auth_id, channel=channel)
                rows.append({"auth": auth, "ceilings": balances.get("ceilings", []), "channel": len(found) > 1 and channel,
                             "days_left": validity_left(auth, moments.parse(balances.get("as_of")))})
        except Problem as p:
            errors.append(f"{auth_id}: {p.detail}")
            continue
    lv = live()
    recent = lv.visibility.filter(principal.org, lv.store.latest(200))[:10]
    added, add_error, typed = _add_outcome(principal)
    return render_template("dashboard/index.html", principal=principal, rows=rows, errors=errors, recent=recent,
                           added=added, add_error=add_error, typed=typed)


# what the add form's redirect may make the index say: fixed words, and an authorisation id only when it is one —
# never text of the address (a link to the dashboard could otherwise make it say anything)
_ADD_ERRORS = {"malformed": "not a well-formed authorisation id (a country code of 2 capital letters, IPO, then 1 to 29 "
                            "capital letters or digits, e.g. FRIPO000123)",
               "unreadable": "not found, or {org} may not read it"}


def _add_outcome(principal) -> tuple[str | None, str | None, str | None]:
    """(added, add_error, the id to fill the form with again) of the index: ``?added=<id>`` or
    ``?add_error=<code>&authorisation_id=<id>``."""
    def well_formed(value):
        return value if whole(ID_PATTERNS["authorisation_id"], value or "") else None
    added = well_formed(request.args.get("added"))
    text = _ADD_ERRORS.get(request.args.get("add_error") or "")
    if text is None:
        return added, None, None
    text = text.format(org=principal.org)
    auth_id = well_formed(request.args.get("authorisation_id"))
    return added, f"{auth_id}: {text}" if auth_id else text, auth_id


@bp.post("/authorisations")
@login_required
def add(principal):
    check_csrf()
    typed = (request.form.get("authorisation_id") or "").strip()
    # ASCII before its case is changed: "frıpo000001" (a dotless i) must not become another, valid, id
    auth_id = typed.upper() if typed.isascii() else typed
    if not whole(ID_PATTERNS["authorisation_id"], auth_id):
        return redirect(url_for("dashboard.index", add_error="malformed"))
    try:
        state().service.evaluate_each(principal.org, "GetAuthorisation", auth_id)   # on several channels: each
    except Problem as p:
        if p.status >= 500:
            raise  # the ledger failing: the error page, with its status (and Retry-After)
        # another holder's or none at all: one answer, as the authorisation's page gives (404 for both)
        return redirect(url_for("dashboard.index", add_error="unreadable", authorisation_id=auth_id))
    live().store.add_authorisation(auth_id, principal.org)
    return redirect(url_for("dashboard.index", added=auth_id))


@bp.get("/authorisations/<authorisation_id>")
@login_required
def authorisation(principal, authorisation_id):
    """An authorisation; on a gateway of several holders' channels, ``?channel=`` names the one asked about (as
    for a lot, and as the 409 page's links do), and every query of the page goes to the channel that answered."""
    auth_id = ok_id("authorisation_id", authorisation_id)
    org = principal.org
    channel, auth = page_item(org, "GetAuthorisation", auth_id)
    balances = evaluate(org, "GetBalances", auth_id, channel=channel)
    alerts = evaluate(org, "GetAlerts", auth_id, None, channel=channel)
    bill = evaluate(org, "GetBillOfDischargeData", auth_id, None, None, channel=channel)
    # the charts: the last CHART_DAYS of each ceiling's use, worked back by the contract from its use now — not the
    # event log from the grant, which grows with the authorisation's history (past the peers' message limit)
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=CHART_DAYS)
    granted = moments.parse(auth.get("granted_at"))
    try:
        use = evaluate(org, "GetCeilingUse", auth_id, moments.text(max(since, granted) if granted else since),
                       channel=channel)
    except Problem as problem:
        if problem.extra.get("code") != "UnknownFunction":
            raise
        use = None   # a contract before GetCeilingUse on the channel (this gateway upgraded first): the page, no charts
    at = moments.parse((bill.get("scope") or {}).get("as_of")) or moments.parse(bill.get("cutoff")) \
        or dt.datetime.now(dt.timezone.utc)   # the ledger time the contract answered at
    lots = [{**lot, **lot_status(lot, bill.get("remaining", []), at)} for lot in bill.get("lots", [])]
    now = bill.get("cutoff") or moments.now_text()
    quantity_svgs = charts.ceiling_charts(use, now) if use is not None else []
    yrows = charts.yield_rows(bill.get("processing", []))
    lv = live()
    timeline = lv.visibility.filter(org, lv.store.latest(50, auth_id))
    return render_template("dashboard/authorisation.html", principal=principal, auth=auth, balances=balances,
                           alerts=alerts.get("alerts", []), lots=lots, batches=bill.get("remaining", []),
                           waste=bill.get("waste", []), quantity_charts=quantity_svgs, yield_rows=yrows,
                           yield_svg=charts.yield_chart(yrows), events_list=timeline,
                           days_left=validity_left(auth, at), chart_days=CHART_DAYS, charts_unknown=use is None,
                           channel=shown_channel(channel))


@bp.get("/events")
@login_required
def events(principal):
    lv = live()
    items = lv.visibility.filter(principal.org, lv.store.latest(300))[:100]
    return render_template("dashboard/events.html", principal=principal, events_list=items)


@bp.get("/alerts")
@login_required
def alerts(principal):
    as_of = moment_param("as_of")   # as the API's: a date or date-time, else a 400 page (not today's alerts)
    channel = channel_param()
    data = alerts_across(principal.org, as_of, channel)
    watch = live().declarations if is_customs(principal.org) else None   # customs' gateway of several channels
    return render_template("dashboard/alerts.html", principal=principal, alerts=data["alerts"], as_of=as_of,
                           moment=data["as_of"], channel=channel,
                           across=watch.alerts(100) if watch is not None else None)


@bp.get("/members")
@login_required
def members(principal):
    """Customs' view of the channel membership (read-only: changes go through `ipledger admin`)."""
    if not is_customs(principal.org):
        abort(403, "the channel's members are shown to customs only (changes go through `ipledger admin`)")
    data = state().service.channel_members(principal.org)
    return render_template("dashboard/members.html", principal=principal, members=data)


@bp.get("/stream")
def stream():
    principal = _principal()
    if principal is None:
        abort(401)
    auth_id = request.args.get("authorisation_id") or None
    if auth_id is not None:
        path_id("authorisation_id", auth_id)   # a bad parameter: 400 invalid-parameter, as the API's stream
    # the session's streams are capped (its tabs); a session from before 'sid' existed: its CSRF token
    return stream_response(principal, auth_id, session_id=session.get("sid") or session.get("csrf"),
                           session_ends_at=session["since"] + _session_seconds())


class SegmentIdentifier(IdentifierConverter):
    """``<ident:…>`` in the pages' links: a ``/`` of the id sent as ``%2F`` (the server decodes it, the route takes
    it). The contract's lot ids may hold ``/`` and ``.``: ``X/../../alerts`` would otherwise be a link a browser
    resolves to another page (``/dashboard/alerts``); as one path segment it is the lot's own."""

    def to_url(self, value) -> str:
        return segment(value)


@bp.app_template_filter("segment")
def segment(value) -> str:
    """``value`` as one URL path segment (``/`` and every other reserved character percent-encoded)."""
    return quote(str(value), safe="!$&'()*+,:;=@")


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the cookie marked ``Secure`` whenever the page was served over
    HTTPS (the gateway's own TLS, or a TLS proxy on loopback that says so in X-Forwarded-Proto): the
    browser then never sends it over plain HTTP."""

    def get_cookie_secure(self, app) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


def session_cookie_name(org: str | None) -> str:
    """The dashboard's session cookie of ``org``'s gateway: ``ipledger_session_<MSP id>`` (an MSP id with other
    characters than a cookie name takes: a digest of it)."""
    if not org:
        return "ipledger_session"
    if re.fullmatch(r"[A-Za-z0-9._-]+", org):
        return f"ipledger_session_{org}"
    return f"ipledger_session_{hashlib.sha256(org.encode()).hexdigest()[:16]}"


def install_access_log(app) -> None:
    """One access line per request of the pages, as the API's (``ipledger.gateway.access``, the same fields):
    who signed in with which key id, refused sign-ins, sign-outs, page reads. Never the key, the cookie or
    what a page shows."""
    @app.before_request
    def _begin():
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.started = time.perf_counter()
        g.log_extra = {}

    @app.after_request
    def _end(response):
        principal = getattr(g, "principal", None)
        elapsed = time.perf_counter() - getattr(g, "started", time.perf_counter())
        route = "/dashboard" + route_label(request.url_rule)
        access_log.info("%s %s %s", request.method[:32], route, response.status_code, extra={
            "request_id": getattr(g, "request_id", None), "method": request.method[:32],
            "path": (request.script_root + request.path)[:256], "route": route, "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 1), "remote_addr": request.remote_addr,
            "key_id": getattr(g, "key_id", None), "org": principal.org if principal else None,
            "role": principal.role if principal else None, **getattr(g, "log_extra", {})})
        return response


def install_session(app, live_services) -> None:
    """Session-cookie settings for the dashboard."""
    app.secret_key = live_services.secret_key()
    app.session_interface = _SessionInterface()
    # the cookie is not re-issued on each request: its expiry, like its signature's age, counts from signing in
    # Cookies do not tell ports apart: one per organisation's gateway (organisations' gateways on one host,
    # e.g. 127.0.0.1:8080 and :8081, would otherwise replace each other's and receive each other's session),
    # sent to the pages only (the API takes API keys, never the cookie)
    app.config.update(SESSION_COOKIE_NAME=session_cookie_name(app.extensions["ipledger"].config.feed_org),
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_PATH="/dashboard", SESSION_REFRESH_EACH_REQUEST=False,
                      PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=app.extensions["ipledger"].config.session_hours))


@bp.app_template_filter("detail")
def detail(value) -> str:
    """A value of an alert's details as the contract gave it: a list as its items (``L1, L2``), an object as
    ``key: value`` pairs, text and numbers as they are — never Python's repr (``['L1', 'L2']``, ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return ", ".join(detail(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {detail(v)}" for k, v in value.items())
    return str(value)
