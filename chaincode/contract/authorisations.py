"""Authorisations for inward processing (UCC art. 211): granted, amended, suspended,
reinstated and revoked by customs.

The authorisation fixes the goods (input CN codes with a ceiling), the processed
products, the rates of yield (art. 255), the sites, the validity and the period
for discharge (art. 257). Amendments apply forward only: lots already placed keep
their discharge deadline, and a lot declared before an amendment of the period and recorded after it
gets the period in force when its declaration was accepted (``discharge_period_at``; the periods an
amendment replaced are kept in ``discharge_periods``) — a longer one than today's raises LateRecording
(``time_rules.review_lateness``): that moment is the declarant's to give. Only customs' acts write an authorisation
(``acts.py``), and like every key it is judged by the chaincode policy — customs' peer and another
member's (``endorsement.py``: why it carries no key-level policy). An authorisation is granted to a registered holder
(``HolderNotRegistered``): its ``holder_eori`` is an EORI of a party customs
registered as ``holder``.
"""
from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Iterable

from ipledger.chaincode.contract import alerts, goods, keys, parties, time_rules, timestamps
from ipledger.chaincode.contract.decimals import exact, pct
from ipledger.chaincode.contract.endorsement import drop_key_policy
from ipledger.chaincode.contract.errors import (AlreadyExists, AuthorisationExpired, AuthorisationNotActive, GoodsNotCovered,
                     HolderNotRegistered, InvalidEvent, InvalidState, NotFound, SiteNotAuthorised,
                     UnitMismatch)

ACTIVE, SUSPENDED, REVOKED, EXPIRED = "ACTIVE", "SUSPENDED", "REVOKED", "EXPIRED"

FIELDS = ("holder_eori", "supervising_office", "valid_from", "valid_to", "sites", "input_goods",
          "processed_products", "yield_rates", "yield_warn_pct", "yield_block_pct", "discharge_period_days",
          "broker_mandates")


# ---------------------------------------------------------------------------------------- reading

def get(state, authorisation_id: str) -> dict:
    auth = state.get(keys.authorisation(authorisation_id))
    if auth is None:
        raise NotFound(f"no authorisation {authorisation_id}", authorisation_id=authorisation_id)
    return auth


def validity(auth: dict) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the validity: from 00:00 UTC of ``valid_from`` to the end of ``valid_to``."""
    return (timestamps.start_of(dt.date.fromisoformat(auth["valid_from"])),
            timestamps.end_of(dt.date.fromisoformat(auth["valid_to"])))


def status_at(auth: dict, now: dt.datetime) -> str:
    """ACTIVE, SUSPENDED or REVOKED as decided by customs; EXPIRED once the validity has ended."""
    if auth["status"] == REVOKED:
        return REVOKED
    if now >= validity(auth)[1]:
        return EXPIRED
    return auth["status"]


# the terms an act is judged by besides validity, status and the period for discharge: what an amendment replaced
# is kept (``former_terms``) so that an act dated before it is measured against them too (terms_at)
TERMS_KEPT = ("sites", "input_goods", "processed_products", "yield_rates", "yield_warn_pct", "yield_block_pct")


def terms_at(auth: dict, moment: dt.datetime) -> dict | None:
    """The terms in force at ``moment`` when an amendment has changed them since — today's :data:`TERMS_KEPT` with
    what each later amendment replaced put back, newest first (``former_terms``: each amendment's ``until``, its
    ledger time, and the values it changed), and ``until``: the first of those amendments —, or None when today's
    were in force then. Acts are judged at ledger time (docs/domain.md §4); one dated before an amendment whose
    earlier terms would have refused it is told to customs (``LateRecording``'s ``earlier_terms``). Amendments
    recorded before the contract kept former terms left none: before the last of them
    (``former_terms_since``) the terms are not known here, and None is answered (the log has them)."""
    since = auth.get("former_terms_since")
    if since is not None and moment < timestamps.parse_datetime(since):
        return None
    terms = None
    for change in reversed(auth.get("former_terms", [])):
        if moment >= timestamps.parse_datetime(change["until"]):
            break
        terms = {**(terms or {f: auth.get(f) for f in TERMS_KEPT}), **change}
    return terms


def discharge_period_at(auth: dict, moment: dt.datetime) -> int:
    """The period for discharge (days) in force at ``moment``: the one an amendment after ``moment`` replaced
    (``discharge_periods``, oldest first: ``{"until": <amendment's ledger time>, "days"}``), else today's."""
    for earlier in auth.get("discharge_periods", []):
        if moment < timestamps.parse_datetime(earlier["until"]):
            return earlier["days"]
    return auth["discharge_period_days"]


def require_in_force(auth: dict, now: dt.datetime) -> None:
    """Placement and processing need an ACTIVE authorisation within its validity; a suspension or
    revocation does not block discharge (exits, losses)."""
    if auth["status"] != ACTIVE:
        raise AuthorisationNotActive(f"authorisation {auth['authorisation_id']} is {auth['status']}",
                                     authorisation_id=auth["authorisation_id"], status=auth["status"])
    start, end = validity(auth)
    if not start <= now < end:
        raise AuthorisationExpired(f"ledger time {timestamps.fmt(now)} is outside the validity "
                                   f"{auth['valid_from']} – {auth['valid_to']}",
                                   authorisation_id=auth["authorisation_id"], ledger_time=timestamps.fmt(now),
                                   valid_from=auth["valid_from"], valid_to=auth["valid_to"])


def not_in_force_at(auth: dict, moment: dt.datetime) -> dict | None:
    """What kept the authorisation from being in force at ``moment`` — an act's legal time, days before the act
    was recorded —, or None: ``validity`` when ``moment`` is outside it, ``status`` when customs had suspended
    or revoked it then (its status history; before the grant was recorded, the status it was granted with).
    Acts are judged at ledger time (docs/domain.md §4); a placement or processing recorded late whose moment
    was not in force is accepted and told to customs (``LateRecording``'s ``not_in_force_then``)."""
    start, end = validity(auth)
    at = timestamps.fmt(moment)
    then = auth["status_history"][0]["status"]
    for entry in auth["status_history"]:
        if entry["recorded_at"] <= at:
            then = entry["status"]
    found = {}
    if not start <= moment < end:
        found["validity"] = {"valid_from": auth["valid_from"], "valid_to": auth["valid_to"]}
    if then != ACTIVE:
        found["status"] = then
    return found or None


def covers(entry_cn: str, cn: str) -> bool:
    """An entry covers its own 8-digit code, or every code below a 4-digit heading."""
    return cn == entry_cn or (len(entry_cn) == 4 and cn.startswith(entry_cn))


def input_entry(auth: dict, cn: str) -> dict | None:
    """The most specific input-goods entry covering ``cn`` (an 8-digit code before its heading)."""
    matches = [e for e in auth["input_goods"] if covers(e["cn"], cn)]
    return max(matches, key=lambda e: len(e["cn"])) if matches else None


# ---------------------------------------------------------------------------------------- ceilings

def ceiling_alert_key(auth: dict, cn: str) -> tuple | None:
    """The CeilingNear alert of the entry covering ``cn`` — what a change of that code's input stock reads
    (alert_rules.review) — or None when no entry covers it."""
    entry = input_entry(auth, cn)
    return keys.alert(auth["authorisation_id"], "CeilingNear", entry["cn"]) if entry is not None else None


def ceiling_usage(state, auth: dict, entry: dict) -> int:
    """Quantity under the procedure for one input-goods entry: the stock of every lot whose CN the
    entry covers (most specific entry wins), in the entry's unit. A range read over the shards of the
    authorisation's input balances (keys.BALANCE_SHARDS at most per goods code)."""
    shards = state.scan(keys.BALANCE, auth["authorisation_id"], goods.INPUT)
    return usage_of(auth, entry, ((cn, unit, bal["stock"]) for (_auth, _cat, cn, unit, _shard), bal in shards))


def ceiling_of(auth: dict, cn: str, unit: str) -> tuple[str, str] | None:
    """The ceiling input goods of code ``cn`` in ``unit`` count under: ``(entry cn, unit)`` of the most specific
    entry covering the code, when it is in that entry's unit; else None (counted by no ceiling)."""
    covering = input_entry(auth, cn)
    return (covering["cn"], unit) if covering is not None and covering["unit"] == unit else None


def usage_of(auth: dict, entry: dict, input_stocks: Iterable[tuple[str, str, int]]) -> int:
    """The ceiling use of ``entry`` from input-goods stocks ``(cn, unit, stock)`` — shards or their sums."""
    own = (entry["cn"], entry["unit"])
    return sum(stock for cn, unit, stock in input_stocks if ceiling_of(auth, cn, unit) == own)


def review_ceiling_entry(tx, auth: dict, entry_cn: str) -> None:
    """CeilingNear: raised while usage ≥ ``ceiling_warn_pct`` % of ``max_qty``."""
    entry = next((e for e in auth["input_goods"] if e["cn"] == entry_cn), None)
    if entry is None:
        return
    used = ceiling_usage(tx.state, auth, entry)
    if used * 100 >= exact(tx.params["ceiling_warn_pct"]) * entry["max_qty"] and used > 0:
        alerts.raise_alert(tx, auth["authorisation_id"], "CeilingNear", entry_cn,
                    {"cn": entry_cn, "unit": entry["unit"], "quantity": used, "max_qty": entry["max_qty"],
                     "pct": pct(used, entry["max_qty"])})
    else:
        alerts.clear_alert(tx, auth["authorisation_id"], "CeilingNear", entry_cn)


def require_input_covered(auth: dict, cn: str) -> dict:
    entry = input_entry(auth, cn)
    if entry is None:
        raise GoodsNotCovered(f"input goods {cn} are not covered by authorisation {auth['authorisation_id']}",
                              cn=cn, authorisation_id=auth["authorisation_id"])
    return entry


def product(auth: dict, cn: str) -> dict | None:
    return next((p for p in auth["processed_products"] if p["cn"] == cn), None)


def require_site(auth: dict, site: str) -> None:
    if site not in auth["sites"]:
        raise SiteNotAuthorised(f"site {site} is not authorised", site=site, sites=auth["sites"],
                                authorisation_id=auth["authorisation_id"])


def require_site_or_goods_there(auth: dict, site: str, records: Iterable[dict]) -> None:
    """SiteNotAuthorised unless ``site`` is authorised or — a site an amendment withdrew while goods lay there —
    one of ``records`` (the goods the act names) still has stock there: goods may leave such a site (a movement
    to an authorised site, an exit, a loss); nothing enters it and nothing is processed there (a control may
    count at any site: controls.py). Otherwise an amendment would strand goods out of every movement and control."""
    if site not in auth["sites"] and not any(record["stock"].get(site, 0) > 0 for record in records):
        require_site(auth, site)


def applicable_rates(auth: dict, input_cn: str) -> dict[str, dict]:
    """The authorised rates of yield that apply to input goods ``input_cn``, by processed product CN: for
    each product, the rate from the most specific input code covering ``input_cn``."""
    out: dict[str, dict] = {}
    for r in auth["yield_rates"]:
        if covers(r["input_cn"], input_cn):
            prev = out.get(r["output_cn"])
            if prev is None or len(r["input_cn"]) > len(prev["input_cn"]):
                out[r["output_cn"]] = r
    return out


def rates_for_input(auth: dict, input_cn: str) -> list[dict]:
    """The authorised rates of yield from ``input_cn``, one per processed product (the most specific
    input match wins), in product CN order."""
    return [{"output_cn": cn, "output_per_input": r["output_per_input"]}
            for cn, r in sorted(applicable_rates(auth, input_cn).items())]


def rate_units(auth: dict, rate: dict) -> list[str]:
    """The units of the input goods a rate of yield is applied to — a quantity *per unit* of them: the unit of
    the entry its input code falls under, and of every more specific entry it is the rate of (no rate of
    its own for that product). One unit for a well-formed authorisation (:func:`check_fields`); sorted."""
    units = set()
    own = input_entry(auth, rate["input_cn"])
    if own is not None:
        units.add(own["unit"])
    for e in auth["input_goods"]:
        applied = applicable_rates(auth, e["cn"]).get(rate["output_cn"]) if covers(rate["input_cn"], e["cn"]) else None
        if applied is not None and applied["input_cn"] == rate["input_cn"]:
            units.add(e["unit"])
    return sorted(units)


def require_rate_unit(auth: dict, lot: dict) -> None:
    """UnitMismatch unless every rate of yield that applies to ``lot`` is authorised per the unit the lot is
    counted in: a rate per kilogram is never applied to a count of pieces — the lot was placed before an
    amendment counted its goods otherwise, or a heading's rate covers it in another unit."""
    for output_cn, r in sorted(applicable_rates(auth, lot["cn"]).items()):
        units = rate_units(auth, r)
        if units != [lot["unit"]]:
            raise UnitMismatch(f"the rate of yield from {r['input_cn']} to {output_cn} is authorised per "
                               f"{' / '.join(units)}; {lot['lot_id']} is counted in {lot['unit']}",
                               lot_id=lot["lot_id"], unit=lot["unit"], rate_units=units,
                               input_cn=r["input_cn"], output_cn=output_cn)


def tolerances(auth: dict, params: dict) -> tuple[Fraction, Fraction]:
    """(yield_warn_pct, yield_block_pct): the authorisation's, or the customs defaults."""
    warn = auth.get("yield_warn_pct")
    block = auth.get("yield_block_pct")
    return (exact(params["yield_warn_pct"] if warn is None else warn),
            exact(params["yield_block_pct"] if block is None else block))


# ---------------------------------------------------------------------------------------- checking fields

def check_fields(event: dict, before: dict | None = None) -> None:
    """InvalidEvent unless dates and rates make sense ("dates and rates valid", docs/domain.md §4). An amendment
    (``before``: the authorisation as it stands) that keeps the input goods and rates as they are is not held to
    the rule that a rate applies to one unit, which came after them: it may still change the mandates of a
    revoked authorisation, say; lots its rates would reach in another unit are refused at processing
    (:func:`require_rate_unit`)."""
    start = timestamps.parse_date(event["valid_from"], "valid_from")
    end = timestamps.parse_date(event["valid_to"], "valid_to")
    if end < start:
        raise InvalidEvent("valid_to is before valid_from", valid_from=event["valid_from"], valid_to=event["valid_to"])
    inputs = [e["cn"] for e in event["input_goods"]]
    if len(set(inputs)) != len(inputs):
        raise InvalidEvent("an input CN code is listed twice", input_goods=inputs)
    outputs = [p["cn"] for p in event["processed_products"]]
    if len(set(outputs)) != len(outputs):
        raise InvalidEvent("a processed product is listed twice", processed_products=outputs)
    kinds = {p["cn"]: p["kind"] for p in event["processed_products"]}
    pairs = set()
    for r in event["yield_rates"]:
        if not any(covers(cn, r["input_cn"]) or covers(r["input_cn"], cn) for cn in inputs):
            raise InvalidEvent(f"rate of yield for input {r['input_cn']}, which is not an input goods entry",
                               input_cn=r["input_cn"])
        if r["output_cn"] not in kinds:
            raise InvalidEvent(f"rate of yield for output {r['output_cn']}, which is not a processed product",
                               output_cn=r["output_cn"])
        if (r["input_cn"], r["output_cn"]) in pairs:
            raise InvalidEvent("a rate of yield is listed twice", input_cn=r["input_cn"], output_cn=r["output_cn"])
        pairs.add((r["input_cn"], r["output_cn"]))
    kept = before is not None and (before["input_goods"], before["yield_rates"]) == \
        (event["input_goods"], event["yield_rates"])
    for r in [] if kept else event["yield_rates"]:
        units = rate_units(event, r)
        if len(units) > 1:
            raise InvalidEvent(f"the rate of yield from {r['input_cn']} to {r['output_cn']} would apply to input "
                               f"goods counted in {' and '.join(units)}: a rate is a quantity per one unit — give "
                               "the goods of each unit a rate of their own", input_cn=r["input_cn"],
                               output_cn=r["output_cn"], units=units)
    for cn, kind in kinds.items():
        if kind == "MAIN" and not any(r["output_cn"] == cn for r in event["yield_rates"]):
            raise InvalidEvent(f"main processed product {cn} has no rate of yield (UCC art. 255)", output_cn=cn)
    warn, block = event.get("yield_warn_pct"), event.get("yield_block_pct")
    if warn is not None and block is not None and warn > block:
        raise InvalidEvent("yield_warn_pct exceeds yield_block_pct", yield_warn_pct=warn, yield_block_pct=block)


def fields_of(event: dict) -> dict:
    """The authorisation's fields as a grant or an amendment ``event`` sets them."""
    out = {f: event[f] for f in FIELDS if f in event}
    out.setdefault("broker_mandates", [])
    out.setdefault("yield_warn_pct", None)
    out.setdefault("yield_block_pct", None)
    return out


def _history(tx, status: str, reason: str | None) -> dict:
    return {"status": status, "reason": reason, "recorded_at": tx.recorded_at, "tx_id": tx.tx_id}


def _save(tx, auth: dict) -> None:
    key = keys.authorisation(auth["authorisation_id"])
    tx.state.put(key, auth)
    drop_key_policy(tx.stub, tx.state.key(key))


def close_until(tx, auth: dict, cutoff: str) -> None:
    """A bill of discharge was submitted for the period ending at ``cutoff``: from now on no act on the
    authorisation may be recorded at a ledger time before it (``time_rules.within_open_time``). Kept on the
    authorisation, which every act on it reads, so that an act endorsed before the submission and sent for
    ordering after it fails Fabric's check of its read set instead of slipping into a closed period."""
    if cutoff > (auth.get("closed_until") or ""):
        auth["closed_until"] = cutoff
        _save(tx, auth)


def _view(auth: dict, now: dt.datetime) -> dict:
    """The authorisation as answered: its status at ``now``; without the terms amendments replaced (``former_terms``:
    the contract's own, for acts dated before them — the log holds every amendment)."""
    view = {k: v for k, v in auth.items() if k not in ("former_terms", "former_terms_since")}
    return {**view, "status": status_at(auth, now), "recorded_status": auth["status"]}


def require_holder_registered(state, auth: dict) -> None:
    """HolderNotRegistered: the authorisation's holder is no longer a registered holder (customs withdrew it,
    or registered its organisation under other EORIs). A representative declares on the holder's behalf:
    it places no new goods under the authorisation of a holder customs no longer know; what is already
    under the procedure may still be discharged (exits)."""
    if parties.holds(state, auth["holder_eori"], parties.HOLDER) is None:
        raise HolderNotRegistered(f"the holder of {auth['authorisation_id']} (EORI {auth['holder_eori']}) is not a "
                                  "registered holder any more: a representative places no goods for it",
                                  holder_eori=auth["holder_eori"], authorisation_id=auth["authorisation_id"])


# ---------------------------------------------------------------------------------------- customs acts

def grant(tx, event: dict) -> dict:
    """GrantAuthorisation (UCC art. 211): a new authorisation, ACTIVE, version 1."""
    auth_id = event["authorisation_id"]
    if tx.state.exists(keys.authorisation(auth_id)):
        raise AlreadyExists(f"authorisation {auth_id} exists", authorisation_id=auth_id)
    check_fields(event)
    if parties.holds(tx.state, event["holder_eori"], parties.HOLDER) is None:
        raise HolderNotRegistered(f"EORI {event['holder_eori']} is not an EORI of a registered holder: customs "
                                  f"register the holder (RegisterParty) before granting it an authorisation",
                                  holder_eori=event["holder_eori"], authorisation_id=auth_id)
    auth = {"authorisation_id": auth_id, **fields_of(event), "status": ACTIVE, "version": 1,
            "granted_at": tx.recorded_at, "amended_at": None, "status_history": [_history(tx, ACTIVE, None)]}
    _save(tx, auth)
    _index_terms(tx, auth_id)
    return {"authorisation": _view(auth, tx.now)}


def _index_terms(tx, authorisation_id: str) -> None:
    """Index this grant or amendment (``keys.auth_terms``): a bill of discharge reads the terms in force at its
    cut-off, and the rates of yield each operation applied, from these log entries (billing.py)."""
    tx.state.put(keys.auth_terms(authorisation_id, tx.recorded_at, tx.tx_id), {})


def amend(tx, event: dict) -> dict:
    """AmendAuthorisation: every field replaced, version + 1; applies forward only. Of a revoked
    authorisation, only the representatives' mandates (``broker_mandates``) may change. Every ceiling's
    ``CeilingNear`` is reviewed, and that of an input-goods entry the amendment removed is cleared."""
    auth = get(tx.state, event["authorisation_id"])
    time_rules.after_every_act(tx, auth)
    if auth["status"] == REVOKED:
        # its goods still have to be discharged: customs may still change who represents the holder
        changed = sorted(f for f, v in fields_of(event).items() if f != "broker_mandates" and v != auth.get(f))
        if changed:
            raise InvalidState("a revoked authorisation cannot be amended, except its representatives' mandates",
                               authorisation_id=auth["authorisation_id"], changed=changed)
    if event["holder_eori"] != auth["holder_eori"]:
        raise InvalidEvent("the holder of an authorisation cannot change (grant a new one)",
                           holder_eori=auth["holder_eori"], given=event["holder_eori"])
    check_fields(event, before=auth)
    _validity_forward_only(tx, auth, event)
    former = sorted(e["cn"] for e in auth["input_goods"])
    if event["discharge_period_days"] != auth["discharge_period_days"]:   # lots declared before keep the old one
        auth.setdefault("discharge_periods", []).append({"until": tx.recorded_at, "days": auth["discharge_period_days"]})
    new = fields_of(event)
    # what it changes of the terms acts are judged by, kept for the acts dated before it (terms_at): from the last
    # amendment on, or from the grant — an amendment recorded before the contract kept them left nothing
    auth.setdefault("former_terms_since", auth.get("amended_at"))
    replaced = {f: auth.get(f) for f in TERMS_KEPT if new.get(f) != auth.get(f)}
    if replaced:
        auth.setdefault("former_terms", []).append({"until": tx.recorded_at, **replaced})
    auth.update(new)
    auth["version"] += 1
    auth["amended_at"] = tx.recorded_at
    _save(tx, auth)
    _index_terms(tx, auth["authorisation_id"])
    for cn in sorted(e["cn"] for e in auth["input_goods"]):  # ceilings may have moved; CN order, as every peer
        review_ceiling_entry(tx, auth, cn)
    current = {e["cn"] for e in auth["input_goods"]}
    for cn in former:   # an entry the amendment removed has no ceiling any more: nothing else would clear its alert
        if cn not in current:
            alerts.clear_alert(tx, auth["authorisation_id"], "CeilingNear", cn)
    return {"authorisation": _view(auth, tx.now)}


def _validity_forward_only(tx, auth: dict, event: dict) -> None:
    """InvalidEvent: an amendment changes the validity from its own time on (UCC art. 28: a decision takes effect
    when it is notified), never behind the acts already recorded under it — a validity shortened ends after the
    amendment's ledger time, and the start of a validity already begun does not move later. (Ending it now is a
    revocation, or an end of validity today; lengthening it, even an ended one, takes nothing back.)"""
    (start, end), (new_start, new_end) = validity(auth), validity(event)
    if new_end < end and new_end <= tx.now:
        raise InvalidEvent("an amendment cannot end the validity before its own time: the acts recorded under it "
                           "were made in force", valid_to=event["valid_to"], ledger_time=tx.recorded_at)
    if start <= tx.now and new_start > start:
        raise InvalidEvent("the validity has begun: its start cannot move later (acts may have been recorded "
                           "under it)", valid_from=auth["valid_from"], given=event["valid_from"])


def suspend(tx, event: dict) -> dict:
    """SuspendAuthorisation (UCC art. 28): blocks placement and processing, not discharge. Only an authorisation
    ACTIVE at the ledger time: not one whose validity has ended (EXPIRED), whatever status customs last set."""
    auth = get(tx.state, event["authorisation_id"])
    time_rules.after_every_act(tx, auth)
    status = status_at(auth, tx.now)
    if status != ACTIVE:
        raise InvalidState(f"only an ACTIVE authorisation can be suspended (it is {status})",
                           authorisation_id=auth["authorisation_id"], status=status)
    auth["status"] = SUSPENDED
    auth["suspended_until"] = event.get("until")
    auth["status_history"].append(_history(tx, SUSPENDED, event["reason"]))
    _save(tx, auth)
    alerts.raise_alert(tx, auth["authorisation_id"], "AuthorisationSuspended", auth["authorisation_id"],
                       {"status": SUSPENDED, "reason": event["reason"], "until": event.get("until")})
    return {"authorisation": _view(auth, tx.now)}


def reinstate(tx, event: dict) -> dict:
    """ReinstateAuthorisation: a suspended authorisation becomes ACTIVE again."""
    auth = get(tx.state, event["authorisation_id"])
    time_rules.after_every_act(tx, auth)
    if auth["status"] != SUSPENDED:
        raise InvalidState(f"only a SUSPENDED authorisation can be reinstated (it is {auth['status']})",
                           authorisation_id=auth["authorisation_id"], status=auth["status"])
    auth["status"] = ACTIVE
    auth["suspended_until"] = None
    auth["status_history"].append(_history(tx, ACTIVE, event["reason"]))
    _save(tx, auth)
    alerts.clear_alert(tx, auth["authorisation_id"], "AuthorisationSuspended", auth["authorisation_id"])
    return {"authorisation": _view(auth, tx.now)}


def revoke(tx, event: dict) -> dict:
    """RevokeAuthorisation (UCC art. 28): final; goods already placed must still be discharged."""
    auth = get(tx.state, event["authorisation_id"])
    time_rules.after_every_act(tx, auth)
    if auth["status"] == REVOKED:
        raise InvalidState("the authorisation is already revoked", authorisation_id=auth["authorisation_id"])
    auth["status"] = REVOKED
    auth["status_history"].append(_history(tx, REVOKED, event["reason"]))
    _save(tx, auth)
    alerts.raise_alert(tx, auth["authorisation_id"], "AuthorisationSuspended", auth["authorisation_id"],
                       {"status": REVOKED, "reason": event["reason"]})
    return {"authorisation": _view(auth, tx.now)}


def view(auth: dict, now: dt.datetime) -> dict:
    return _view(auth, now)
