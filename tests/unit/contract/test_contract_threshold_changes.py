"""Alerts judged against a customs threshold follow a change of it at once (docs/domain.md §6: the thresholds are
customs' parameters)."""

from ipledger.chaincode.contract import InwardProcessingContract
from ipledger.chaincode.testing.scenario import AUTH_ID, Scenario


def _alerts(s, kind, *args):
    return [a for a in s.query("GetAlerts", AUTH_ID, *args)["alerts"] if a["type"] == kind]


def test_a_lowered_ceiling_warn_pct_raises_ceiling_near_at_once():
    s = Scenario.with_l1(InwardProcessingContract)          # 1,000 of 5,000 under the procedure: 20 %
    assert _alerts(s, "CeilingNear") == []
    s.accepted(s.set_parameters(ceiling_warn_pct=10))
    [alert] = _alerts(s, "CeilingNear")
    assert (alert["subject"], alert["details"]["quantity"], alert["details"]["pct"]) == ("40122000", 1000, "20")


def test_a_raised_ceiling_warn_pct_clears_ceiling_near_at_once():
    s = Scenario.with_l1(InwardProcessingContract)
    s.accepted(s.place("L2", 3600))                          # 4,600 / 5,000 = 92 %
    assert len(_alerts(s, "CeilingNear")) == 1
    s.accepted(s.set_parameters(ceiling_warn_pct=95))
    assert _alerts(s, "CeilingNear") == []
    s.accepted(s.set_parameters(ceiling_warn_pct=90))        # and back
    assert len(_alerts(s, "CeilingNear")) == 1


def test_a_lowered_loss_warn_pct_raises_loss_rate_high_and_a_raised_one_clears_it():
    s = Scenario.with_l1(InwardProcessingContract)
    s.accepted(s.lose(5, lot_id="L1", reason="NATURE"))      # 0.5 % of 1,000
    assert _alerts(s, "LossRateHigh") == []
    s.accepted(s.set_parameters(loss_warn_pct=0.25))
    [alert] = _alerts(s, "LossRateHigh")
    assert (alert["subject"], alert["details"]["lost"], alert["details"]["entered"]) == ("LOT:L1", 5, 1000)
    s.accepted(s.set_parameters(loss_warn_pct=1))
    assert _alerts(s, "LossRateHigh") == []


def test_a_threshold_change_is_in_the_authorisations_log_for_its_past_alerts():
    """GetAlerts as of a past moment replays the authorisation's log: the change customs' act made to its alerts
    is there, so the alert stands as of a moment after the act and not before it."""
    s = Scenario.with_l1(InwardProcessingContract)
    before = s.query("GetAlerts", AUTH_ID)["as_of"]
    s.accepted(s.set_parameters(ceiling_warn_pct=10))
    now = s.query("GetAlerts", AUTH_ID)["as_of"]
    assert [a["subject"] for a in _alerts(s, "CeilingNear", now)] == ["40122000"]
    assert _alerts(s, "CeilingNear", before) == []


def test_a_loss_reads_its_loss_rate_alert_with_the_rest_of_its_reads(monkeypatch):
    """A loss judges its LossRateHigh (raised, or cleared under a raised threshold): that key comes in the one
    round trip of the loss's other reads, not alone."""
    from tests.unit.contract.test_contract_read_ahead import counting
    s = Scenario(InwardProcessingContract)
    s.accepted(s.grant())
    s.accepted(s.place("L1", 1000, msp="OperatorMSP"))
    calls = counting(monkeypatch)
    s.accepted(s.lose(1, lot_id="L1", reason="NATURE", event_id="loss-1", msp="OperatorMSP"))
    assert [k for k in calls["get_state"] if "LossRateHigh" in k] == []
