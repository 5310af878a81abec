from __future__ import annotations

import datetime as dt
import re

import pytest

from ipledger.gateway.app import create_app
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import GatewayConfig

from .contract_ledger import ContractLedger, ListSource, body, ledger_now, wait_for

ORGS = ("CustomsMSP", "OperatorMSP", "BrokerMSP")
AUTH, AUTH2 = "FRIPO000001", "FRIPO000002"
HOLDER, BROKER_EORI, OTHER_HOLDER = "FR12345678901234", "FR98765432109876", "FR55555555555555"
OTHER_HOLDER_MSP = "PlantBMSP"   # the other holder's organisation (registered by customs in the scenario)
SITE1, SITE2 = "BOURGES-1", "BOURGES-2"
USED, RETREADED, WASTE = "40122000", "40121200", "40040000"


def names(html: str, ident: str) -> bool:
    """Whether a page names ``ident`` (a lot, a batch): as a word of its own, not inside a random token of the page
    (a CSRF token or a nonce — base64url — may hold "L9")."""
    return re.search(rf"(?<![A-Za-z0-9_-]){re.escape(ident)}(?![A-Za-z0-9_-])", html) is not None


def day(n: int) -> str:
    """The date ``n`` days after the ledger's today (contract_ledger.ledger_now: never the real clock's, which may
    pass midnight between two calls of a test or between its events)."""
    return (ledger_now() + dt.timedelta(days=n)).date().isoformat()


def grant(auth_id=AUTH, holder=HOLDER, mandates=(BROKER_EORI,), event_id=None):
    return body("GrantAuthorisation", event_id or f"grant-{auth_id}", authorisation_id=auth_id, holder_eori=holder,
                supervising_office="FR000110", valid_from=day(-30), valid_to=day(335), sites=[SITE1, SITE2],
                input_goods=[{"cn": USED, "description": "used tyres", "unit": "p/st", "max_qty": 5000}],
                processed_products=[{"cn": RETREADED, "kind": "MAIN", "unit": "p/st"},
                                    {"cn": WASTE, "kind": "WASTE", "unit": "kg"}],
                yield_rates=[{"input_cn": USED, "output_cn": RETREADED, "output_per_input": 1}],
                yield_warn_pct=0.5, yield_block_pct=2, discharge_period_days=180, broker_mandates=list(mandates))


def place(lot_id, qty, mrn, auth_id=AUTH):
    return body("PlaceUnderProcedure", f"place-{lot_id}", authorisation_id=auth_id, lot_id=lot_id, mrn=mrn, item_no=1,
                procedure="5100", cn=USED, description="used tyres", quantity=qty, unit="p/st",
                net_mass_g=qty * 9000, origin="MA", site=SITE1,
                commercial={"customs_value": {"amount": "25000.00", "currency": "EUR"}})


def process(event_id="proc-1", op_id="OP1", qty=500, main=495):
    return body("RecordProcessing", event_id, authorisation_id=AUTH, operation_id=op_id, site=SITE1,
                inputs=[{"lot_id": "L1", "qty": qty}],
                outputs=[{"batch_id": "B1", "cn": RETREADED, "qty": main, "unit": "p/st", "kind": "MAIN"},
                         {"batch_id": "B2", "cn": WASTE, "qty": 1200, "unit": "kg", "kind": "WASTE"}])


class Keys(dict):
    pass


@pytest.fixture
def ledger():
    return ContractLedger()


@pytest.fixture
def keystore(tmp_path):
    return KeyStore(tmp_path / "state" / "gateway" / "api-keys.json")


@pytest.fixture
def keys(keystore):
    out = Keys()
    for org in ORGS:
        for role in ("clerk", "viewer"):
            out[(org, role)] = keystore.create(org, role, f"{org} {role}")[1]
    return out


@pytest.fixture
def config(tmp_path, keystore):
    return GatewayConfig(keys_file=keystore.path, nonce_key_file=tmp_path / "state" / "gateway" / "nonce.key",
                         sse_max_seconds=1.0, sse_poll_seconds=0.02, webhook_backoff_s=0.05,
                         webhook_max_backoff_s=0.2, webhook_max_attempts=5, webhook_timeout_s=2.0,
                         customs_msp="CustomsMSP")


@pytest.fixture
def app(config, ledger, keys):
    app = create_app(config, ledger=ledger)
    yield app
    app.extensions["ipledger_live"].close()


@pytest.fixture
def live(app):
    return app.extensions["ipledger_live"]


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


class Api:
    def __init__(self, client, keys):
        self.client, self.keys = client, keys

    def post(self, body_, org, status=201):
        r = self.client.post("/api/v1/events", json=body_, headers=bearer(self.keys[(org, "clerk")]))
        assert r.status_code == status, r.get_data(as_text=True)
        return r.get_json()

    def get(self, path, org, **kw):
        return self.client.get(path, headers={**bearer(self.keys[(org, "viewer")]), **kw.pop("headers", {})}, **kw)


@pytest.fixture
def api(client, keys):
    return Api(client, keys)


@pytest.fixture
def scenario(api, live, ledger):
    """domain.md §8 steps 1-4 and 6 through the REST API, a second authorisation of another holder without a
    broker mandate, and the feed listener (fake event source) caught up with all of it. The ledger's register
    of parties starts with the holder (OperatorMSP) and the broker (BrokerMSP); customs register the other
    holder's organisation through the API."""
    api.post(body("RegisterParty", "party-plant-b", msp_id=OTHER_HOLDER_MSP, role="holder", eoris=[OTHER_HOLDER]),
             "CustomsMSP")
    api.post(grant(), "CustomsMSP")
    api.post(place("L1", 1000, "26FR000110000001R8"), "BrokerMSP")
    api.post(body("MoveGoods", "move-1", authorisation_id=AUTH, lot_id="L1", quantity=400, from_site=SITE1,
                  to_site=SITE2), "OperatorMSP")
    api.post(process(), "OperatorMSP")
    api.post(body("ExitGoods", "exit-B1", authorisation_id=AUTH, batch_id="B1", quantity=495, procedure="3151",
                  mrn="26FR000110000007A7"), "BrokerMSP")
    api.post(place("L2", 4200, "26FR000110000002R7"), "BrokerMSP")
    api.post(grant(AUTH2, holder=OTHER_HOLDER, mandates=()), "CustomsMSP")
    source = ListSource(ledger)
    live.start_listener(source)
    last = (ledger.events[-1].block_number, ledger.events[-1].tx_id)
    # stored first, checkpointed after every hook: wait for both, the checkpoint last
    wait_for(lambda: live.store.count() == len(ledger.events))
    wait_for(lambda: (lambda cp: cp is not None and (cp.block_number, cp.tx_id) == last)(
        live.listener.checkpointer.checkpoint))
    return source


class SeesOnly:
    """A stand-in for the feed's Visibility: ``org`` sees the items of one authorisation; counts what it was asked."""

    def __init__(self, authorisation_id):
        self.authorisation_id, self.asked = authorisation_id, 0

    def filter(self, org, items):
        items = list(items)
        self.asked += len(items)
        return [i for i in items if i.get("authorisation_id") == self.authorisation_id]
