"""Two holders' channels (A: OperatorMSP's, B: PlantBMSP's) served by one gateway, customs' or a representative's
mandated by both, each channel the real contract in memory."""
from __future__ import annotations

import datetime as dt

import pytest

from ipledger.gateway.app import create_app
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import GatewayConfig
from tests.unit.dashboard.contract_ledger import ledger_now

from .harness import A, B, ChannelContractLedgers, ListSource, body, wait_for

ORGS = ("CustomsMSP", "OperatorMSP", "BrokerMSP", "PlantBMSP")
HOLDER_A, HOLDER_B, BROKER_EORI = "FR12345678901234", "FR55555555555555", "FR98765432109876"
USED, RETREADED, WASTE = "40122000", "40121200", "40040000"


def day(n):
    return (ledger_now() + dt.timedelta(days=n)).date().isoformat()


def grant(auth_id, holder, mandates=(BROKER_EORI,)):
    return body("GrantAuthorisation", f"grant-{auth_id}", authorisation_id=auth_id, holder_eori=holder,
                supervising_office="FR000110", valid_from=day(-30), valid_to=day(335), sites=["SITE-1"],
                input_goods=[{"cn": USED, "description": "used tyres", "unit": "p/st", "max_qty": 5000}],
                processed_products=[{"cn": RETREADED, "kind": "MAIN", "unit": "p/st"},
                                    {"cn": WASTE, "kind": "WASTE", "unit": "kg"}],
                yield_rates=[{"input_cn": USED, "output_cn": RETREADED, "output_per_input": 1}],
                yield_warn_pct=0.5, yield_block_pct=2, discharge_period_days=180, broker_mandates=list(mandates))


def place(auth_id, lot_id, qty, mrn, item_no=1, procedure="5100", event_id=None):
    return body("PlaceUnderProcedure", event_id or f"place-{auth_id}-{lot_id}", authorisation_id=auth_id,
                lot_id=lot_id, mrn=mrn, item_no=item_no, procedure=procedure, cn=USED, description="used tyres",
                quantity=qty, unit="p/st", net_mass_g=qty * 9000, origin="MA", site="SITE-1",
                commercial={"customs_value": {"amount": "25000.00", "currency": "EUR"}})


@pytest.fixture
def keystore(tmp_path):
    return KeyStore(tmp_path / "state" / "gateway" / "api-keys.json")


@pytest.fixture
def keys(keystore):
    return {(org, role): keystore.create(org, role, f"{org} {role}")[1] for org in ORGS for role in ("clerk", "viewer")}


@pytest.fixture
def ledgers():
    return ChannelContractLedgers()


@pytest.fixture
def app(tmp_path, keystore, keys, ledgers):
    config = GatewayConfig(keys_file=keystore.path, nonce_key_file=tmp_path / "state" / "gateway" / "nonce.key",
                           channel=A, channels=(A, B), customs_msp="CustomsMSP", sse_max_seconds=1.0,
                           sse_poll_seconds=0.02, webhook_backoff_s=0.05)
    app = create_app(config, ledger=ledgers)
    yield app
    app.extensions["ipledger_live"].close()


class Api:
    def __init__(self, client, keys):
        self.client, self.keys = client, keys

    def post(self, event, org, status=201, **params):
        r = self.client.post("/api/v1/events", json=event, query_string=params,
                             headers={"Authorization": f"Bearer {self.keys[(org, 'clerk')]}"})
        assert r.status_code == status, r.get_data(as_text=True)
        return r.get_json()

    def get(self, path, org, **params):
        return self.client.get(path, query_string=params,
                               headers={"Authorization": f"Bearer {self.keys[(org, 'viewer')]}"})


@pytest.fixture
def api(app, keys):
    return Api(app.test_client(), keys)


@pytest.fixture
def two_holders(api):
    """Holder A (OperatorMSP, FRIPOA000001) on ip-plant-a, holder B (PlantBMSP, FRIPOB000001) on ip-plant-b; the
    representative (BrokerMSP, one EORI) mandated by both, registered on both channels."""
    api.post(body("RegisterParty", "party-plant-b", msp_id="PlantBMSP", role="holder", eoris=[HOLDER_B]),
             "CustomsMSP", channel=B)
    api.post(body("WithdrawParty", "withdraw-operator-on-b", msp_id="OperatorMSP"), "CustomsMSP", channel=B)
    api.post(grant("FRIPOA000001", HOLDER_A), "CustomsMSP")   # goes where its holder is registered
    api.post(grant("FRIPOB000001", HOLDER_B), "CustomsMSP")
    return api


@pytest.fixture
def listening(app, ledgers):
    """The feed listener of each channel; ``caught_up()`` waits until every event of every channel is stored."""
    live = app.extensions["ipledger_live"]
    for channel, ledger in ledgers.by_channel.items():
        live.start_listener(ListSource(ledger), channel, dispatch=channel == A)

    def caught_up():
        wait_for(lambda: live.store.count() == sum(len(x.events) for x in ledgers.by_channel.values()))
    live.caught_up = caught_up
    return live
