"""Secrets and private data: a removed webhook subscription keeps no secret, a URL with credentials is refused, and
other libraries' log records do not reach the gateway's log.

* A removed webhook subscription kept its signing secret in ``webhooks.json`` (and every backup of it) for good; a URL
  carrying a user name and password was kept, listed and backed up as it was.
* Another library's messages reached the gateway's log as it worded them: the PDF fonts' subsetting (``fontTools``)
  lists the characters of each report, a customs value's digits among them.
(gunicorn's refusals quoting an API key: ``test_refusals_repeat_nothing.py``; a report written 0644:
``tests/unit/network/test_state_files_and_links.py``.)
"""
from __future__ import annotations

import json
import logging

import pytest

from ipledger.gateway.observability import OwnInfoOnly
from ipledger.gateway.webhooks import Subscriptions, WebhookError


def test_a_removed_subscription_keeps_no_secret(tmp_path):
    subs = Subscriptions(tmp_path / "webhooks.json")
    gone, gone_secret = subs.add("https://erp.example/a", "OperatorMSP", secret="s" * 24 + "GONE")
    kept, kept_secret = subs.add("https://erp.example/b", "OperatorMSP", secret="k" * 24 + "KEPT")
    assert subs.remove(gone["id"])
    text = (tmp_path / "webhooks.json").read_text()
    assert gone_secret not in text and kept_secret in text
    stored = json.loads(text)["subscriptions"]
    assert stored[gone["id"]]["removed_at"] and "secret" not in stored[gone["id"]]
    assert [s["id"] for s in subs.active()] == [kept["id"]] and subs.active()[0]["secret"] == kept_secret


def test_a_subscription_removed_by_an_earlier_version_loses_its_secret_at_the_next_removal(tmp_path):
    path = tmp_path / "webhooks.json"
    subs = Subscriptions(path)
    old, _ = subs.add("https://erp.example/old", "OperatorMSP", secret="o" * 24 + "OLDV")
    other, _ = subs.add("https://erp.example/other", "OperatorMSP")
    data = json.loads(path.read_text())
    data["subscriptions"][old["id"]]["removed_at"] = "2026-12-01T00:00:00Z"   # as an earlier version removed it
    path.write_text(json.dumps(data))
    assert subs.remove(other["id"])
    assert "OLDV" not in path.read_text()


@pytest.mark.parametrize("url", ["https://alice:hunter2@erp.example/hook", "https://token@erp.example/hook",
                                 "http://user:pw@127.0.0.1:9999/hook"])
def test_a_webhook_url_with_a_user_or_password_is_refused(tmp_path, url):
    with pytest.raises(WebhookError, match="no user name or password"):
        Subscriptions(tmp_path / "webhooks.json").add(url, "OperatorMSP")
    assert not (tmp_path / "webhooks.json").exists() or "hunter2" not in (tmp_path / "webhooks.json").read_text()


def _passes(name: str, level: int) -> bool:
    record = logging.LogRecord(name, level, __file__, 1, "Glyph names: ['nine', 'one', 'eight']", None, None)
    return OwnInfoOnly().filter(record)


def test_only_the_gateways_own_records_and_gunicorns_are_written_below_warning():
    assert not _passes("fontTools.subset", logging.INFO) and not _passes("fpdf.output", logging.DEBUG)
    assert _passes("fontTools.subset", logging.WARNING)              # a library's problem is still told
    assert _passes("ipledger.gateway.access", logging.INFO) and _passes("gunicorn.error", logging.INFO)


def test_a_pdf_report_writes_nothing_of_its_text_in_the_log(tmp_path, capsys):
    """The whole path: the gateway's logging set up as its server does, a PDF of a bill written."""
    from ipledger.gateway import observability, reports
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers[:] = []
    try:
        observability.configure_logging("INFO")
        pdf = reports.ReportPdf("Bill of discharge FRIPO000001")
        pdf.heading("Lots")
        pdf.para("L1 pneus rechapés, customs value 918273.64 EUR")
        assert bytes(pdf.output()).startswith(b"%PDF")
    finally:
        root.handlers[:], root.level = saved_handlers, saved_level
    err = capsys.readouterr().err
    assert "918273" not in err and "fontTools" not in err
