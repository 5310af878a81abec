"""The dashboard's downloads: the documents its pages link — an authorisation's audit trail (CSV, JSON) and bill of
discharge (PDF, CSV; JSON as well), a lot's and a batch's audit trail (CSV, JSON) — for a signed-in session.

The API's routes of these documents (``/api/v1/…``) take API keys only, which a browser does not send; these routes
are under ``/dashboard``, where the session cookie goes. Each answers with the API's own document
(:func:`ipledger.gateway.api.audit.authorisation_trail`, :func:`~ipledger.gateway.api.audit.lot_trail`,
:func:`~ipledger.gateway.api.audit.batch_trail`,
:func:`ipledger.gateway.api.reports.bill_document`: one source for both) as the session's organisation may read it —
what the contract lets it read, so a broker never gets a customs value and nobody another holder's authorisation —
and refuses what the API refuses, with the API's status, on the dashboard's error page. A document is a file to save
(``Content-Disposition: attachment``, named as the API names it) that no cache keeps (``Cache-Control: no-store``).

Its format is the path's suffix (``…/audit.csv``), not a query parameter: a request without a session is sent to sign
in and then back to its path (``next`` keeps no query, :func:`ipledger.gateway.dashboard.ui._after_sign_in`) — to the
same document. The API's query parameters are read as the API reads them: ``channel`` (a gateway of several holders'
channels; the pages' links carry the channel their page shows), ``from``/``to`` of an authorisation's trail,
``period_end``/``as_of`` of a bill; each given once. A GET changes nothing, so it needs no CSRF token; it needs a
session, of any role that may read (viewer and clerk)."""
from __future__ import annotations

from flask import Blueprint, abort

from ipledger.gateway.api.audit import authorisation_trail, batch_trail, lot_trail
from ipledger.gateway.api.common import permitted, refuse_repeated_parameters, refuse_unknown_parameters
from ipledger.gateway.api.reports import bill_document
from ipledger.gateway.auth import Principal
from ipledger.gateway.problems import Problem
from ipledger.gateway.dashboard.ui import login_required

bp = Blueprint("downloads", __name__)


@bp.after_request
def _never_kept(response):
    """One organisation's documents (customs values too): never kept by the browser's or a shared cache."""
    response.headers["Cache-Control"] = "no-store"
    return response


def _reader(principal: Principal, *taken: str) -> Principal:
    """As the API: ``?as_of=…&as_of=…`` or a parameter the document does not take (``?period-end=``) is a 400,
    not the document without it."""
    refuse_repeated_parameters()
    refuse_unknown_parameters(("channel", *taken))
    return permitted(principal, "read")


def _as_the_page(document):
    """An authorisation's document the organisation may not read is the page's 404, as an unknown one is (the
    authorisation page answers both alike; the API says 403 to a representative without a mandate)."""
    try:
        return document()
    except Problem as p:
        if p.status == 403:
            abort(404)
        raise


@bp.get("/authorisations/<authorisation_id>/audit.<any(csv, json):fmt>")
@login_required
def authorisation_audit(principal, authorisation_id, fmt):
    reader = _reader(principal, "from", "to")
    return _as_the_page(lambda: authorisation_trail(reader, authorisation_id, fmt, attach_json=True))


@bp.get("/authorisations/<authorisation_id>/bill-of-discharge.<any(pdf, csv, json):fmt>")
@login_required
def bill_of_discharge(principal, authorisation_id, fmt):
    reader = _reader(principal, "period_end", "as_of")
    return _as_the_page(lambda: bill_document(reader, authorisation_id, fmt, attach_json=True))


@bp.get("/lots/<ident:lot_id>/audit.<any(csv, json):fmt>")
@login_required
def lot_audit(principal, lot_id, fmt):
    return lot_trail(_reader(principal), lot_id, fmt, attach_json=True)


@bp.get("/batches/<ident:batch_id>/audit.<any(csv, json):fmt>")
@login_required
def batch_audit(principal, batch_id, fmt):
    return batch_trail(_reader(principal), batch_id, fmt, attach_json=True)
