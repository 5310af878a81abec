"""The register of parties in the live feed: an entry is shown to customs, who wrote it, and to the party it is
about — not to the channel's other parties (as GetParties answers); and it drops the cached read permissions,
since registering or withdrawing a party changes who may read."""
from __future__ import annotations

from ipledger.gateway.feed.store import feed_item
from ipledger.gateway.feed.visibility import Visibility
from ipledger.gateway.problems import Problem


class Contract:
    """GetAuthorisation as ``org``: allowed for the orgs in ``readers``; counts the questions."""

    def __init__(self, readers):
        self.readers, self.asked = set(readers), 0

    def evaluate_json(self, org, function, *args):
        self.asked += 1
        if org not in self.readers:
            raise Problem(403, "not-permitted")
        return {"authorisation_id": args[0]}


def item(event_type, event, org="CustomsMSP", n=1):
    return feed_item(n, f"{n:064x}", {"recorded_at": "2026-03-02T09:00:00Z", "events": [
        {"event_type": event_type, "event_id": f"e{n}", "authorisation_id": event.get("authorisation_id"),
         "submitted_by": {"msp_id": org, "name": "clerk", "role": "client"}, "event": event}]})


def test_a_register_entry_is_shown_to_customs_and_to_its_party_only():
    vis = Visibility(Contract({"CustomsMSP", "PlantAMSP"}))
    entry = item("RegisterParty", {"msp_id": "BrokerAMSP", "role": "representative", "eoris": ["FR2"]})
    assert vis.filter("CustomsMSP", [entry]) == [entry]
    assert vis.filter("BrokerAMSP", [entry]) == [entry]
    assert vis.filter("PlantAMSP", [entry]) == []
    withdrawn = item("WithdrawParty", {"msp_id": "BrokerAMSP"}, n=2)
    assert vis.filter("PlantAMSP", [withdrawn]) == [] and vis.filter("BrokerAMSP", [withdrawn]) == [withdrawn]


def test_registering_a_party_drops_every_cached_read_permission():
    contract = Contract({"CustomsMSP"})
    vis = Visibility(contract)
    move = item("MoveGoods", {"authorisation_id": "FRIPO1", "lot_id": "L1"}, org="PlantAMSP", n=3)
    assert vis.filter("PlantAMSP", [move]) == []          # not (yet) a registered holder: asked, refused, cached
    assert vis.filter("PlantAMSP", [move]) == [] and contract.asked == 1
    contract.readers.add("PlantAMSP")                       # customs register it ...
    register = item("RegisterParty", {"msp_id": "PlantAMSP", "role": "holder", "eoris": ["FR1"]}, n=4)
    assert vis.filter("PlantAMSP", [register, move]) == [register, move]   # ... and the cache is dropped
    assert contract.asked == 2
