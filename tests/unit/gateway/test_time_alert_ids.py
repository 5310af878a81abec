"""A time alert's id is fixed by what the alert is about (a lot's deadline, a bill's due date, a declaration, the end
of validity), not by when this gateway first saw it: after the gateway's database is lost or put back from an older
copy, the poll finds the alert again and sends it under the same id, which the receiver already has (and the
delivery queue, unique per subscription and alert id, does not queue twice)."""
from __future__ import annotations

import json

from .fakes import evaluate_error
from .test_channels import A, B, set_answers
from .test_webhook_filters import HOOK, channels, router_of

ledgers, app, duplicate = channels.ledgers, channels.app, channels.duplicate


def _deliveries(deliveries) -> list[tuple[str, str]]:
    with deliveries.store.connection() as db:
        return [(r["alert_id"], json.loads(r["body"])["change"]) for r in db.execute(
            "SELECT alert_id, body FROM deliveries ORDER BY delivery_id")]


def test_an_alert_found_again_after_the_gateway_forgot_it_keeps_its_id(duplicate, ledgers, tmp_path):
    for channel in (A, B):
        set_answers(ledgers, channel, GetAlerts=lambda org, args, channel=channel: {"alerts": [
            {"type": "DeadlineOverdue", "subject": "LOT:L1", "source": "DERIVED", "authorisation_id": args[0],
             "details": {"deadline": "2026-09-01T00:00:00.000000Z", "balance": 3}}]}
            if (channel, args[0]) == (A, "FRIPO000002") else (_ for _ in ()).throw(evaluate_error("NotFound", "no")))
    subs, deliveries, router = router_of(duplicate, tmp_path)
    subs.add(HOOK, "CustomsMSP")
    with duplicate.app_context():
        assert router.poll_time_alerts() == 1
        [(first, change)] = _deliveries(deliveries)
        with deliveries.store.connection() as db:      # what the gateway remembered of the alert: lost
            db.execute("DELETE FROM time_alerts")
            db.execute("DELETE FROM time_alert_raises")
        assert router.poll_time_alerts() == 1           # found again, as new
    assert _deliveries(deliveries) == [(first, "RAISED")]   # the same id: not queued a second time


def test_an_alert_raised_again_about_the_same_moment_is_a_new_alert(duplicate, ledgers, tmp_path):
    """A bill of discharge submitted clears BillOfDischargeDue; customs query it, and the bill is due again — with
    the same due date. Each raise (and its clearing) is delivered under an id of its own, not dropped as the first
    one's repeat."""
    state = {"due": True}
    for channel in (A, B):
        set_answers(ledgers, channel, GetAlerts=lambda org, args, channel=channel: {"alerts": [
            {"type": "BillOfDischargeDue", "subject": "2026-08-29", "source": "DERIVED", "authorisation_id": args[0],
             "details": {"period_end": "2026-08-29", "due": "2026-09-28T23:59:59.999999Z"}}] if state["due"] else []}
            if (channel, args[0]) == (A, "FRIPO000002") else (_ for _ in ()).throw(evaluate_error("NotFound", "no")))
    subs, deliveries, router = router_of(duplicate, tmp_path)
    subs.add(HOOK, "CustomsMSP")
    with duplicate.app_context():
        for due in (True, False, True, False):
            state["due"] = due
            assert router.poll_time_alerts() == 1
    sent = _deliveries(deliveries)
    assert [change for _id, change in sent] == ["RAISED", "CLEARED", "RAISED", "CLEARED"]
    assert len({alert_id for alert_id, _change in sent}) == 4, sent
