"""Two authorisation holders on one ledger, each seeing only its own (issue 15), on a real network.

``network/consortium-holders.yaml``: customs, holder A with its broker A, holder B with its broker B; a
channel per holder (``ip-plant-a``, ``ip-plant-b``), customs' peer on both, every other peer on its own
holder's channel only. One REST gateway per organisation (customs' serves both channels, with its live feed).

* **Roles as data**: on each channel customs register the holder and its broker (``RegisterParty``), then
  grant the holder its authorisation; the contract names no organisation.
* **domain.md §8 for both holders at once**, each event through the gateway of the organisation performing
  it; customs' gateway routes each event to the channel of its authorisation.
* **Confidentiality on disk**: holder A's peer and broker A's peer have no ledger of channel ``ip-plant-b``,
  and none of holder B's identifiers (authorisation, lot ids, MRNs, EORI) is anywhere in their data
  directories; customs' peer has both (so the search does find what is there).
* **The role matrix per holder**: holder B's gateway cannot reach A's authorisation (404; naming A's channel:
  400 ``unknown-channel``); broker B is not registered on A's channel; a holder cannot act for the other's
  authorisation even on its own channel.
* **Customs' view across holders**: its dashboard knows both authorisations, its alert list and inventory
  report cover both, its feed shows each event with its channel; a lot id both holders use (L1) is found per
  channel (``?channel=``), and without one it is 409 ``ambiguous-channel``.
* **Declaration items across the channels**: one import item recorded by each holder's own gateway raises customs'
  ``DeclarationAcrossChannels`` alert.

One file of some 500 lines: every test here shares the module's one network (customs, two holders and their brokers
on two channels, about 30 s to bring up with its gateways); split, each part would bring up its own.
"""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ipledger.chaincode.testing import mrns
from ipledger.chaincode.testing.scenario import SITE1, SITE2
from ipledger.gateway.auth import KeyStore
from ipledger.gateway.config import keys_file_of
from ipledger.network.cli import commands, consortium as consortium_cli, gateway_daemon as daemon
from ipledger.network import consortium as consortium_mod
from ipledger.network.channel.package import ChaincodeSpec
from ipledger.network.channel.chaincode import deploy_on_channels
from ipledger.network.org.nodes import Nodes

from .conftest import free_base_port, processes_using
from .support_faults import QUIET, GatewayProcess, stop_gateways
from .test_gateway_api import PROBLEMS, REPO, RETREADED, USED_TYRES, WASTE, Api, day, ev

pytestmark = pytest.mark.fabric

HOLDERS_FILE = Path(consortium_mod.__file__).with_name("consortium-holders.yaml")
CUSTOMS = "CustomsMSP"


class Holder:
    """One holder's side of the consortium: its channel, organisations, EORIs, authorisation and MRNs."""

    def __init__(self, key: str, n: int, holder_eori: str, broker_eori: str):
        self.key, self.channel = key, f"ip-plant-{key}"
        self.holder, self.broker = f"Plant{key.upper()}MSP", f"Broker{key.upper()}MSP"
        self.holder_eori, self.broker_eori = holder_eori, broker_eori
        self.auth = f"FRIPO{key.upper()}{n:06d}"
        self.mrn_l1, self.mrn_l2, self.mrn_l3 = (mrns.placement_mrn(n * 100 + i) for i in (1, 2, 3))
        self.mrn_exit_b1, self.mrn_exit_600 = mrns.exit_mrn(n * 100 + 7), mrns.exit_mrn(n * 100 + 5)

    def ev(self, event_type: str, name: str, **fields) -> dict:
        return ev(event_type, f"{self.key}-{name}", **fields)

    def grant(self) -> dict:
        return self.ev("GrantAuthorisation", "grant", authorisation_id=self.auth, holder_eori=self.holder_eori,
                       supervising_office="FR000110", valid_from=day(-30), valid_to=day(335), sites=[SITE1, SITE2],
                       input_goods=[{"cn": USED_TYRES, "description": "used pneumatic tyres", "unit": "p/st",
                                     "max_qty": 5000}],
                       processed_products=[{"cn": RETREADED, "kind": "MAIN", "unit": "p/st",
                                            "description": "retreaded"},
                                           {"cn": WASTE, "kind": "WASTE", "unit": "kg",
                                            "description": "rubber waste"}],
                       yield_rates=[{"input_cn": USED_TYRES, "output_cn": RETREADED, "output_per_input": 1}],
                       yield_warn_pct=0.5, yield_block_pct=2, discharge_period_days=180,
                       broker_mandates=[self.broker_eori])

    def place(self, lot_id: str, qty: int, mrn: str) -> dict:
        return self.ev("PlaceUnderProcedure", f"place-{lot_id}", authorisation_id=self.auth, lot_id=lot_id, mrn=mrn,
                       item_no=1, procedure="5100", cn=USED_TYRES, description="used tyres", quantity=qty,
                       unit="p/st", net_mass_g=qty * 9000, origin="MA", site=SITE1,
                       commercial={"customs_value": {"amount": "25000.00", "currency": "EUR"}})

    def move(self, qty: int) -> dict:
        return self.ev("MoveGoods", "move-1", authorisation_id=self.auth, lot_id="L1", quantity=qty,
                       from_site=SITE1, to_site=SITE2)

    def process(self, name: str, op_id: str, lot_qty: int, main_qty: int, batches=("B1", "B2")) -> dict:
        return self.ev("RecordProcessing", name, authorisation_id=self.auth, operation_id=op_id, site=SITE1,
                       inputs=[{"lot_id": "L1", "qty": lot_qty}],
                       outputs=[{"batch_id": batches[0], "cn": RETREADED, "qty": main_qty, "unit": "p/st",
                                 "kind": "MAIN"},
                                {"batch_id": batches[1], "cn": WASTE, "qty": 1200, "unit": "kg", "kind": "WASTE"}])

    def exit_(self, name: str, qty: int, mrn: str, procedure: str = "3151", **ref) -> dict:
        return self.ev("ExitGoods", name, authorisation_id=self.auth, quantity=qty, procedure=procedure, mrn=mrn,
                       **ref)

    def secrets(self) -> list[str]:
        """What identifies this holder's business: none of it may be on another holder's peer."""
        return [self.auth, self.holder_eori, self.mrn_l1, self.mrn_l2, self.mrn_exit_b1, f"{self.key}-place-L1"]


A = Holder("a", 9101, "FR11111111111111", "FR22222222222222")
B = Holder("b", 9201, "DE33333333333333", "DE44444444444444")
C = Holder("c", 9301, "IT55555555555555", "IT66666666666666")  # joins at the end, without a broker
ORGS = (CUSTOMS, A.holder, A.broker, B.holder, B.broker)


class HoldersApi(Api):
    """The five gateways; after a write, wait until every peer of the event's channel has its block."""

    def __init__(self, urls: dict, keys: dict, net: Nodes, gateways: dict | None = None):
        super().__init__(urls, keys, {}, {})
        self.gateways = gateways or {}
        self.use(net)

    def use(self, net: Nodes) -> None:
        """The channels (and their peers) to wait on after a write."""
        self.channels = {ch.consortium.channel: ch for ch in net.channels()}

    def post(self, body, org, role="clerk", path="/api/v1/events", channel=None, **kw):
        params = {"channel": channel} if channel else None
        r = self.http.post(self.urls[org] + path, json=body, headers=self.headers(org, role), params=params,
                           timeout=120, **kw)
        if r.status_code in (200, 201) and path == "/api/v1/events":
            out = r.json()
            ch = self.channels[out.get("channel") or channel or _only_channel(org)]
            deadline = time.monotonic() + 30
            for peer in ch.consortium.peers:
                while (ch.peer_height(peer) or 0) <= out["block_number"]:
                    assert time.monotonic() < deadline, f"{peer.id} did not commit block {out['block_number']}"
                    time.sleep(0.05)
        return r

    def ok(self, body, org, status=201, channel=None) -> dict:
        r = self.post(body, org, channel=channel)
        assert r.status_code == status, f"{body['type']} as {org}: {r.status_code} {r.text}"
        return r.json()

    def problem(self, r, status: int, name: str) -> dict:
        assert r.status_code == status, r.text
        assert r.headers["Content-Type"].startswith("application/problem+json")
        p = r.json()
        assert p["type"] == PROBLEMS + name, p
        return p


def _only_channel(org: str) -> str:
    return next(h.channel for h in (A, B, C) if org in (h.holder, h.broker))


# --------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def holders_net(tmp_path_factory):
    state = tmp_path_factory.mktemp("holders") / "state"
    net = Nodes.open(state, HOLDERS_FILE, base_port=free_base_port())
    try:
        net.up(log=QUIET, timeout=120)
        deploy_on_channels(net, ChaincodeSpec.default(), log=QUIET)
        yield net
    finally:
        Nodes.open(state).down(log=QUIET)  # as saved: with the holder a test added
    assert not processes_using(net.layout.root), "processes left running after down"


@pytest.fixture(scope="module")
def api(holders_net, tmp_path_factory):
    logs = tmp_path_factory.mktemp("holders-gateways")
    state = holders_net.layout.root
    keys = {(org, role): KeyStore(keys_file_of(state, org)).create(org, role, f"holders {org} {role}")[1]
            for org in ORGS for role in ("clerk", "viewer")}
    gateways = {org: GatewayProcess(state, logs / f"gateway-{org}.log", org, workers=1, threads=8,
                                    live_feed=org == CUSTOMS) for org in ORGS}
    try:
        for gw in gateways.values():
            gw.start(timeout=90)
        yield HoldersApi({org: gw.url for org, gw in gateways.items()}, keys, holders_net, gateways)
    finally:
        stop_gateways(gateways)


@pytest.fixture(scope="module")
def scenarios(api):
    """Both holders registered, granted and through domain.md §8 at the same time (a thread each)."""
    failures: dict[str, BaseException] = {}

    def run(h: Holder) -> None:
        try:
            section8(api, h)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            failures[h.key] = e

    threads = [threading.Thread(target=run, args=(h,)) for h in (A, B)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not failures, failures
    return api


def section8(api: HoldersApi, h: Holder) -> None:
    """domain.md §8 for holder ``h``: customs register its parties and grant; the broker places L1, the holder
    moves and processes (refused once out of tolerance), the broker re-exports B1, an exit beyond the balance is
    refused, the ceiling is neared then refused, a replay returns the original transaction."""
    def done(body, org, channel=None):
        out = api.ok(body, org, channel=channel)
        assert out["status"] == "COMMITTED", out
        return out

    for msp, role, eori in ((h.holder, "holder", h.holder_eori), (h.broker, "representative", h.broker_eori)):
        out = done(h.ev("RegisterParty", f"register-{msp}", msp_id=msp, role=role, eoris=[eori]), CUSTOMS,
                   channel=h.channel)
        assert out["channel"] == h.channel
    out = done(h.grant(), CUSTOMS)  # the channel where customs registered the holder
    assert out["channel"] == h.channel
    placement = h.place("L1", 1000, h.mrn_l1)
    done(placement, h.broker)
    out = done(h.move(400), h.holder)
    assert out["org"] == h.holder and "channel" not in out  # a gateway of one channel: nothing to route
    done(h.process("proc-1", "OP1", 500, 495), h.holder)
    done(h.exit_("exit-B1", 495, h.mrn_exit_b1, batch_id="B1"), h.broker)
    out = done(h.ev("ConfirmExit", "confirm-1", authorisation_id=h.auth, mrn=h.mrn_exit_b1,
                    exit_date=dt.datetime.now(dt.timezone.utc).date().isoformat()), CUSTOMS)
    assert out["channel"] == h.channel  # customs' gateway found the authorisation's channel
    p = api.problem(api.post(h.process("proc-bad", "OPX", 100, 96, batches=("BX1", "BX2")), h.holder), 409,
                    "yield-out-of-tolerance")
    assert p["code"] == "YieldOutOfTolerance"
    p = api.problem(api.post(h.exit_("exit-600", 600, h.mrn_exit_600, lot_id="L1", procedure="4051"), h.holder),
                    409, "quantity-exceeds-balance")
    done(h.place("L2", 4200, h.mrn_l2), h.broker)
    api.problem(api.post(h.place("L3", 400, h.mrn_l3), h.broker), 409, "ceiling-exceeded")
    for org in (CUSTOMS, h.holder):
        lot = api.get("/api/v1/lots/L1", org, params={"channel": h.channel}).json()
        assert lot["balance"] == 500 and lot["stock"] == {SITE1: 100, SITE2: 400}, (org, lot)
    bill = api.get(f"/api/v1/authorisations/{h.auth}/bill-of-discharge-data", h.holder,
                   params={"as_of": day(1)}).json()
    assert [(lot["lot_id"], lot["quantity"]) for lot in bill["lots"]] == [("L1", 1000), ("L2", 4200)]
    assert bill["proof"]["conservation_holds"] is True
    customs_bill = api.get(f"/api/v1/authorisations/{h.auth}/bill-of-discharge-data", CUSTOMS,
                           params={"as_of": day(1)}).json()
    assert customs_bill["document_hash"] == bill["document_hash"]
    assert api.ok(placement, h.broker, status=200)["status"] == "REPLAYED"


# --------------------------------------------------------------------------------------------- tests

def test_each_peer_is_on_its_holders_channel_only(holders_net):
    joined = {}
    for ch in holders_net.channels():
        for peer in ch.consortium.peers:
            joined.setdefault(peer.id, []).append(ch.consortium.channel)
    assert joined == {"peer0.customs": ["ip-plant-a", "ip-plant-b"], "peer0.planta": ["ip-plant-a"],
                      "peer0.brokera": ["ip-plant-a"], "peer0.plantb": ["ip-plant-b"],
                      "peer0.brokerb": ["ip-plant-b"]}
    for peer_id, channels in joined.items():
        peer = holders_net.consortium.node(peer_id)
        on_disk = sorted(p.name for p in _chains_dir(holders_net, peer).iterdir())
        assert on_disk == channels, (peer_id, on_disk)


def test_section8_for_both_holders_at_once(scenarios):
    api = scenarios
    for h in (A, B):
        r = api.get(f"/api/v1/authorisations/{h.auth}/balances", CUSTOMS)
        assert r.status_code == 200, r.text
        assert r.json()["authorisation_id"] == h.auth


def test_a_holders_data_is_absent_from_the_other_holders_peers(scenarios, holders_net):
    """Not only the API: the blocks, state and private data on disk of A's peers hold nothing of B's, and the
    other way round — while customs' peer, on both channels, holds both (the search finds what is there)."""
    for h, other in ((A, B), (B, A)):
        for org in (h.holder, h.broker):
            peer = holders_net.consortium.org(org).peers[0]
            found = _grep(_data_dir(holders_net, peer), [s.encode() for s in other.secrets()])
            assert not found, f"{peer.id} holds {other.holder}'s data: {found}"
            assert _grep(_data_dir(holders_net, peer), [h.auth.encode()]), f"{peer.id} lacks its own data"
    customs = _data_dir(holders_net, holders_net.consortium.org(CUSTOMS).peers[0])
    assert _grep(customs, [A.auth.encode()]) and _grep(customs, [B.auth.encode()])


def test_the_role_matrix_per_holder(scenarios):
    api = scenarios
    # B's organisations do not reach A's authorisation: it is not on their channel
    for org in (B.holder, B.broker):
        api.problem(api.get(f"/api/v1/authorisations/{A.auth}", org), 404, "not-found")
        p = api.problem(api.get(f"/api/v1/authorisations/{A.auth}", org, params={"channel": A.channel}), 400,
                        "unknown-channel")
        assert p["channels"] == [B.channel]
        # a declaration both may lodge on their own channel: A's authorisation is not there
        api.problem(api.post(A.exit_("exit-from-b", 1, mrns.exit_mrn(9999), lot_id="L1"), org), 404, "not-found")
    # A's holder reads its own authorisation and its customs value; its broker only the hash
    assert api.get(f"/api/v1/authorisations/{A.auth}", A.holder).status_code == 200
    assert api.get("/api/v1/lots/L1", A.holder).json()["commercial"]["customs_value"]["amount"] == "25000.00"
    assert "commercial" not in api.get("/api/v1/lots/L1", A.broker).json()
    # holder-only acts stay the holder's: A's broker may not move goods, A's holder may not grant
    p = api.problem(api.post(A.move(1), A.broker), 403, "not-permitted")
    assert p["details"]["role"] == "representative" and p["details"]["allowed"] == ["holder"]
    p = api.problem(api.post(A.ev("SetParameters", "params-by-holder", parameters={"warn_days": 10}), A.holder),
                    403, "not-permitted")
    assert p["details"]["allowed"] == ["customs"], p
    # customs' acts that create on a channel name it; a wrong name is refused before any transaction
    p = api.problem(api.post(A.ev("SetParameters", "params-no-channel", parameters={"warn_days": 20}), CUSTOMS),
                    400, "channel-required")
    assert sorted(p["channels"]) == [A.channel, B.channel]
    api.problem(api.post(A.ev("SetParameters", "params-bad-channel", parameters={"warn_days": 20}), CUSTOMS,
                         channel="ip-plant-z"), 400, "unknown-channel")


def test_customs_sees_every_holder_in_one_place(scenarios):
    api = scenarios
    known = _eventually(lambda: api.get("/api/v1/dashboard/authorisations", CUSTOMS).json()["authorisations"],
                        lambda ids: {A.auth, B.auth} <= set(ids), "customs' feed to know both authorisations")
    assert {A.auth, B.auth} <= set(known)
    alerts = api.get("/api/v1/alerts", CUSTOMS).json()
    assert {A.auth, B.auth} <= set(alerts["authorisations"])
    near = {a["authorisation_id"] for a in alerts["alerts"] if a["type"] == "CeilingNear"}
    assert near == {A.auth, B.auth}, alerts
    inventory = api.get("/api/v1/reports/inventory", CUSTOMS, params={"as_of": day(1)}).json()
    assert {a["authorisation_id"] for a in inventory["authorisations"]} >= {A.auth, B.auth}
    feed = api.get("/api/v1/feed", CUSTOMS, params={"limit": 200}).json()["items"]
    channels = {i["authorisation_id"]: i["channel"] for i in feed if i.get("authorisation_id")}
    assert channels[A.auth] == A.channel and channels[B.auth] == B.channel
    # a holder's own dashboard knows only its own authorisation
    assert A.auth not in api.get("/api/v1/dashboard/authorisations", B.holder).json()["authorisations"]
    # both holders number their lots from L1: customs name the channel, or get 409
    p = api.problem(api.get("/api/v1/lots/L1", CUSTOMS), 409, "ambiguous-channel")
    assert sorted(p["channels"]) == [A.channel, B.channel]
    for h in (A, B):
        lot = api.get("/api/v1/lots/L1", CUSTOMS, params={"channel": h.channel}).json()
        assert lot["authorisation_id"] == h.auth


def test_customs_is_alerted_of_one_declaration_item_used_on_both_holders_channels(scenarios):
    """Each holder's own gateway serves its own channel only, and each channel's contract sees its own items: holder
    A and holder B each place a lot under the same import declaration item, and both are recorded. Customs' gateway,
    whose feed reads both channels, raises a DeclarationAcrossChannels alert naming both uses — for customs only."""
    api = scenarios
    m = mrns.placement_mrn(9998)   # an item neither holder's scenario uses
    assert "channel" not in api.ok(A.place("L8", 10, m), A.holder)   # a gateway of one channel: nothing to compare
    api.ok(B.place("L8", 10, m), B.holder)
    found = _eventually(lambda: api.get("/api/v1/declarations/across-channels", CUSTOMS).json(),
                        lambda answer: any(a["alert"]["details"]["mrn"] == m for a in answer["alerts"]),
                        "customs' gateway to raise the alert")
    assert found["watching"] is True
    [alert] = [a for a in found["alerts"] if a["alert"]["details"]["mrn"] == m]
    assert alert["alert"]["type"] == "DeclarationAcrossChannels"
    assert alert["alert"]["details"]["problem"] == "duplicate-declaration"
    assert sorted((u["channel"], u["authorisation_id"]) for u in alert["alert"]["details"]["uses"]) == \
        sorted([(A.channel, A.auth), (B.channel, B.auth)])
    for org in (A.holder, B.broker):
        api.problem(api.get("/api/v1/declarations/across-channels", org), 403, "forbidden")


def test_what_a_holders_host_receives_holds_nothing_of_the_other_holder(holders_net, tmp_path):
    """'ipledger channel export': the public files the founder sends to a channel's members (its genesis block,
    its members' definitions and MSPs, the consortium file trimmed to it) — a holder's host that received them
    can run its part ('network up' reads only its own channel), and nothing in them names the other holder."""
    from ipledger.network.cli.org import export_channel
    out = tmp_path / "for-plant-a"
    written = export_channel(holders_net, A.channel, out)
    assert written
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for other in (B.holder, B.broker, B.channel, "plantb", "brokerb"):
                assert other.encode() not in data, f"{path.relative_to(out)} names {other}"
    trimmed = Nodes.open(tmp_path / "state-a", out / "consortium.yaml")
    assert trimmed.consortium.channel_names() == [A.channel]
    assert (out / "channels" / A.channel / "genesis.block").read_bytes() == \
        holders_net.on_channel(A.channel).layout.genesis_block.read_bytes()


def test_a_third_holder_joins_on_a_channel_of_its_own(scenarios, holders_net, tmp_path):
    """Adding a holder: its organisation and channel (network add-holder: its own identities, the channel founded
    from the public definitions), its peer joins, the contract is committed there; customs register it and grant.
    Nothing of it reaches A's or B's peers, and customs' one gateway covers the three holders without a restart:
    once the contract is committed on C's channel, ``chaincode deploy`` reloads it (SIGHUP: the same gunicorn
    master, new workers serving the channels the consortium now gives customs)."""
    api = scenarios
    net = Nodes.open(holders_net.layout.root)
    state = net.layout.root
    customs = api.gateways[CUSTOMS]
    master = customs.proc.pid
    daemon.pid_file(state, CUSTOMS).write_text(f"{master} {customs.url}\n")   # as 'gateway start' records it
    consortium_cli.network_add_holder(net, C.holder, C.channel, log=QUIET)
    net.up(log=QUIET, timeout=120)
    assert daemon.serving(state, CUSTOMS) == [A.channel, B.channel]
    # joined, but no contract on C's channel yet: serving it would fail every event customs route
    workers = set(daemon.worker_pids(master))
    refused = subprocess.run([sys.executable, "-m", "ipledger.network.cli", "--state-dir", str(state), "gateway",
                              "reload", "--org", CUSTOMS], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert f"the contract is not committed on {C.channel}" in refused.stderr
    assert set(daemon.worker_pids(master)) == workers and daemon.serving(state, CUSTOMS) == [A.channel, B.channel]
    committed = deploy_on_channels(net, ChaincodeSpec.default(), log=QUIET)
    api.use(net)
    try:
        commands._reload_gateways(net, {ch for ch, definition in committed.items() if definition is not None})
    finally:
        daemon.pid_file(state, CUSTOMS).unlink(missing_ok=True)
    assert customs.proc.poll() is None and customs.proc.pid == master, "customs' gateway was restarted"
    assert daemon.serving(state, CUSTOMS) == [A.channel, B.channel, C.channel]
    customs.wait_ready(timeout=90)
    assert f"{CUSTOMS} on {C.channel}" in api.get("/readyz", CUSTOMS).json()["orgs"]
    for role in ("clerk", "viewer"):
        api.keys[(C.holder, role)] = KeyStore(keys_file_of(state, C.holder)).create(C.holder, role, f"c {role}")[1]
    plant_c = GatewayProcess(state, tmp_path / "gateway-c.log", C.holder, workers=1, threads=8)
    api.urls[C.holder] = plant_c.url
    try:
        plant_c.start(timeout=90)
        api.ok(C.ev("RegisterParty", "register-c", msp_id=C.holder, role="holder", eoris=[C.holder_eori]), CUSTOMS,
               channel=C.channel)
        assert api.ok(C.grant(), CUSTOMS)["channel"] == C.channel
        api.ok(C.place("L1", 10, C.mrn_l1), C.holder)  # a holder may lodge its own declarations
        assert api.get("/api/v1/lots/L1", C.holder).json()["authorisation_id"] == C.auth
    finally:
        plant_c.stop()
    assert not plant_c.group(), "holder C's gateway left running"
    peer_c = net.consortium.org(C.holder).peers[0]
    assert sorted(p.name for p in _chains_dir(net, peer_c).iterdir()) == [C.channel]
    assert sorted(p.name for p in _chains_dir(net, net.consortium.org(CUSTOMS).peers[0]).iterdir()) == [
        A.channel, B.channel, C.channel]
    for org in (A.holder, A.broker, B.holder, B.broker):
        peer = net.consortium.org(org).peers[0]
        assert C.channel not in [p.name for p in _chains_dir(net, peer).iterdir()]
        assert not _grep(_data_dir(net, peer), [s.encode() for s in C.secrets()]), f"{peer.id} holds C's data"
    known = _eventually(lambda: api.get("/api/v1/dashboard/authorisations", CUSTOMS).json()["authorisations"],
                        lambda ids: {A.auth, B.auth, C.auth} <= set(ids), "customs' feed to know C's authorisation")
    assert {A.auth, B.auth, C.auth} <= set(known)
    # A's goods are as they were
    assert api.get("/api/v1/lots/L1", CUSTOMS, params={"channel": A.channel}).json()["balance"] == 500


# --------------------------------------------------------------------------------------------- helpers

def _data_dir(net: Nodes, peer) -> Path:
    return net.layout.data_dir(peer)


def _chains_dir(net: Nodes, peer) -> Path:
    matches = list(_data_dir(net, peer).rglob("chains/chains"))
    assert matches, f"no block store under {_data_dir(net, peer)}"
    return matches[0]


def _grep(root: Path, needles: list[bytes]) -> list[str]:
    """Files under ``root`` holding any of ``needles`` (block files, state and private data databases)."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.relative_to(root)}: {n.decode()}" for n in needles if n in data]
    return hits


def _eventually(read, ok, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    value = read()
    while not ok(value):
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {value}"
        time.sleep(0.5)
        value = read()
    return value


def test_customs_and_a_broker_cannot_put_anyone_on_a_holders_channel_without_the_holder(holders_net, tmp_path):
    """On ip-plant-b, customs and broker B are two of three members: a majority, but not enough. Adding an
    organisation needs customs' and holder B's admins together (Application Admins), and the orderer enforces
    it: signed by customs and the broker the update is refused; once holder B signs too, it goes through."""

    def ipledger(*args):   # a command of its own: each organisation's admin signs in its own process
        done = subprocess.run([sys.executable, "-m", "ipledger.network.cli", "--state-dir",
                               str(holders_net.layout.root), "--channel", B.channel, *map(str, args)],
                              capture_output=True, text=True, timeout=900)
        return done.returncode, done.stdout, done.stderr

    net = Nodes.open(holders_net.layout.root)
    consortium_cli.network_add_org(net, "AuditBMSP", name="auditb", channels=[B.channel], log=QUIET)
    definition, update = tmp_path / "AuditBMSP.json", tmp_path / "add-auditb.pb"
    rc, out, err = ipledger("org", "definition", "--org", "AuditBMSP", "--output", definition)
    assert rc == 0, out + err
    rc, out, err = ipledger("admin", "propose", "add-org", "--definition", definition, "--as", CUSTOMS,
                            "--output", update)
    assert rc == 0, err
    assert "/Channel/Application/Admins: AND('CustomsMSP.admin', 'PlantBMSP.admin')" in out, out
    for org in (CUSTOMS, B.broker):
        rc, out, err = ipledger("admin", "sign", update, "--as", org)
        assert rc == 0, out + err
    rc, out, err = ipledger("admin", "submit", update, "--force")
    assert rc == 2 and "the orderer refused the update" in err, out + err
    rc, out, err = ipledger("admin", "sign", update, "--as", B.holder)
    assert rc == 0 and "Ready to submit." in out, out + err
    rc, out, err = ipledger("admin", "submit", update)
    assert rc == 0, out + err
    rc, out, _ = ipledger("admin", "members", "--json")
    import json
    assert "AuditBMSP" in [o["msp_id"] for o in json.loads(out)["organisations"]]
