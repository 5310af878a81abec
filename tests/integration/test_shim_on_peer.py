"""The Python shim + external builder on a real Fabric v3.1.5 peer (no Go anywhere).

Every stub call is exercised through the test chaincode `stubcheck`, invoked
through the peer Gateway with each org's client identity.
"""
import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ipledger.gateway.client import EndorseError, EvaluateError, GatewayError

pytestmark = pytest.mark.fabric
J = json.dumps


@pytest.fixture(scope="module")
def op(clients, stubcheck):
    return clients.contract("OperatorMSP", "stubcheck")


@pytest.fixture(scope="module")
def broker(clients, stubcheck):
    return clients.contract("BrokerMSP", "stubcheck")


def ev(contract, fn, *args, **kw):
    return json.loads(contract.evaluate(fn, [J(a) for a in args], **kw) or b"null")


def sub(contract, fn, *args, **kw):
    r = contract.submit(fn, [J(a) for a in args], **kw)
    return r, json.loads(r.result or b"null")


def test_put_get_delete_and_multiple_get(op):
    r, tx_id = sub(op, "Put", "a1", "one")
    assert tx_id == r.tx_id and r.block_number > 0
    sub(op, "PutMany", {"a2": "two", "a3": "three"})
    assert ev(op, "Get", "a1") == "one"
    assert ev(op, "GetMany", ["a3", "missing", "a1"]) == ["three", "", "one"]
    sub(op, "Delete", "a1")
    assert ev(op, "Get", "a1") == ""


def test_history_lists_every_write_with_its_tx(op, broker):
    """Only the broker's peer keeps a history database in the test network (conftest.HISTORY_ORG; the
    product's peers keep none unless asked): it lists every write; the operator's peer refuses clearly."""
    r1, _ = sub(op, "Put", "h", "v1")
    r2, _ = sub(op, "Put", "h", "v2")
    r3, _ = sub(op, "Delete", "h")
    deadline = time.monotonic() + 30
    while len(history := ev(broker, "History", "h")) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)  # the broker's peer commits the operator's last block a moment later
    assert [(m["tx_id"], m["value"], m["is_delete"]) for m in history] == [
        (r3.tx_id, "", True), (r2.tx_id, "v2", False), (r1.tx_id, "v1", False)]
    with pytest.raises(EvaluateError) as e:
        ev(op, "History", "h")
    assert "history database is not enabled" in str(e.value)


def test_range_query_larger_than_one_peer_batch_and_paginated(op):
    keys = {f"r{i:04d}": f"v{i}" for i in range(250)}  # the peer sends 100 per batch
    for chunk in (dict(list(keys.items())[i:i + 125]) for i in (0, 125)):
        sub(op, "PutMany", chunk)
    everything = ev(op, "Range", "r", "s")
    assert [kv["key"] for kv in everything] == sorted(keys)
    assert all(kv["value"] == keys[kv["key"]] for kv in everything)
    pages, bookmark = [], ""
    while True:
        page = ev(op, "RangePage", "r", "s", 100, bookmark)
        pages.append(page)
        if page["fetched"] < 100:
            break
        bookmark = page["bookmark"]
    assert [p["fetched"] for p in pages] == [100, 100, 50]
    assert [kv["key"] for p in pages for kv in p["items"]] == sorted(keys)


def test_composite_keys_and_partial_queries(op):
    for lot, site in [("L1", "S1"), ("L1", "S2"), ("L2", "S1"), ("L10", "")]:
        r, split = sub(op, "PutComposite", "stock", [lot, site], f"{lot}@{site}")
        assert split == ["stock", [lot, site]]
    found = ev(op, "Partial", "stock", ["L1"])
    assert found == [{"attributes": ["L1", "S1"], "value": "L1@S1"},
                     {"attributes": ["L1", "S2"], "value": "L1@S2"}]
    assert len(ev(op, "Partial", "stock", [])) == 4
    page = ev(op, "PartialPage", "stock", [], 3, "")
    assert (page["count"], page["fetched"]) == (3, 3)
    rest = ev(op, "PartialPage", "stock", [], 3, page["bookmark"])
    assert (rest["count"], rest["fetched"]) == (1, 1)
    with pytest.raises(EndorseError) as e:
        sub(op, "PutComposite", "stock", ["bad\u0000attr"], "x")
    assert e.value.chaincode_status == 500
    # from just after a key (its attributes and an empty one: the key + U+0000), as the contract reads on after
    # a range read the peer may have cut (chaincode/contract/state.py)
    assert ev(op, "PartialFrom", "stock", [], ["L1", "S1", ""]) == [["L1", "S2"], ["L10", ""], ["L2", "S1"]]
    assert ev(op, "PartialFrom", "stock", ["L1"], ["S2", ""]) == []
    for lot, site in [("L1", "S1"), ("L1", "S2"), ("L2", "S1"), ("L10", "")]:   # the contract's values are JSON
        sub(op, "PutComposite", "scanned", [lot, site], f'"{lot}@{site}"')
    for cut_at in (1, 2, 3, 4, 5):
        assert ev(op, "Scan", "scanned", [], cut_at) == [["L1", "S1"], ["L1", "S2"], ["L10", ""], ["L2", "S1"]]
    # bounded at both ends (before the end's attributes): a bill's last month read up to its cut-off
    assert ev(op, "PartialBetween", "stock", [], ["L1", "S2"], ["L2"]) == [["L1", "S2"], ["L10", ""]]
    assert ev(op, "PartialBetween", "stock", ["L1"], [], ["S2"]) == [["L1", "S1"]]
    assert ev(op, "PartialBetween", "stock", [], ["L2"], ["L1"]) == []       # an end before the start: nothing
    for cut_at in (1, 2, 3):
        assert ev(op, "ScanBetween", "scanned", [], ["L1", "S2"], ["L2"], cut_at) == [["L1", "S2"], ["L10", ""]]


def test_state_based_endorsement_parameter(op):
    from fabric_protos.common import policies_pb2
    from fabric_protos.msp import msp_principal_pb2
    from fabric_protos.msp.msp_principal_pb2 import MSPPrincipal, MSPRole
    role = MSPRole(msp_identifier="CustomsMSP", role=MSPRole.PEER)
    policy = policies_pb2.SignaturePolicyEnvelope(
        version=0,
        rule=policies_pb2.SignaturePolicy(
            n_out_of=policies_pb2.SignaturePolicy.NOutOf(
                n=1, rules=[policies_pb2.SignaturePolicy(signed_by=0)])),
        identities=[MSPPrincipal(principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
                                 principal=role.SerializeToString())])
    sub(op, "Put", "sbe", "guarded")
    sub(op, "SetKeyPolicy", "sbe", policy.SerializeToString().hex())
    assert ev(op, "GetKeyPolicy", "sbe") == policy.SerializeToString().hex()
    # Now only a CustomsMSP peer's endorsement validates a write to that key.
    with pytest.raises(GatewayError) as e:
        op.submit("Put", [J("sbe"), J("overwritten")], endorsing_orgs=["OperatorMSP"])
    assert "ENDORSEMENT_POLICY_FAILURE" in str(e.value)
    op.submit("Put", [J("sbe"), J("by customs")], endorsing_orgs=["CustomsMSP"])
    assert ev(op, "Get", "sbe") == "by customs"


def test_private_data_readable_only_by_member_orgs(op, broker):
    secret = b"25000 EUR"
    op.submit("PutPrivate", [J("priv"), J("value-L1")], transient={"value": secret},
              endorsing_orgs=["OperatorMSP"])
    assert ev(op, "GetPrivate", "priv", "value-L1") == secret.decode()
    assert ev(op, "PrivateRange", "priv", "value-", "value.") == [
        {"key": "value-L1", "value": secret.decode()}]
    import hashlib
    assert ev(broker, "GetPrivateHash", "priv", "value-L1") == hashlib.sha256(secret).hexdigest()
    with pytest.raises(EvaluateError) as e:
        ev(broker, "GetPrivate", "priv", "value-L1")
    assert "not authorized" in str(e.value).lower() or "access" in str(e.value).lower()
    op.submit("DeletePrivate", [J("priv"), J("value-L1")], endorsing_orgs=["OperatorMSP"])
    assert ev(op, "GetPrivate", "priv", "value-L1") == ""
    op.submit("PutPrivate", [J("priv"), J("value-L2")], transient={"value": b"x"},
              endorsing_orgs=["OperatorMSP"])
    op.submit("PurgePrivate", [J("priv"), J("value-L2")], endorsing_orgs=["OperatorMSP"])
    assert ev(op, "GetPrivate", "priv", "value-L2") == ""


def test_transaction_context_is_the_proposals(op, fabric_network):
    ctx = ev(op, "Context", transient={"secret": b"s"})
    assert ctx["mspid"] == "OperatorMSP" and ctx["channel"] == "inward-processing"
    assert len(ctx["tx_id"]) == 64 and ctx["transient"] == ["secret"]
    assert len(ctx["binding"]) == 64 and ctx["signed_proposal_len"] > ctx["creator_len"] > 500
    user_cert = next((fabric_network.layout.user_msp(
        fabric_network.consortium.org("OperatorMSP"), "User1") / "signcerts").iterdir())
    assert ctx["creator_pem"].strip() == user_cert.read_text().strip()
    age = time.time() - __import__("datetime").datetime.fromisoformat(ctx["timestamp"]).timestamp()
    assert 0 <= age < 30


def test_chaincode_event_reaches_a_client_and_last_set_event_wins(op, clients):
    gw = clients.gateway("OperatorMSP").network("inward-processing")
    r, _ = sub(op, "Put", "before-events", "x")
    with gw.chaincode_events("stubcheck", start_block=r.block_number + 1) as events:
        emitted, _ = sub(op, "Emit", "LotPlaced", '{"lot": "L1"}')
        event = next(iter(events))
    assert (event.tx_id, event.event_name, event.payload) == (
        emitted.tx_id, "LotPlaced", b'{"lot": "L1"}')
    assert event.block_number == emitted.block_number


def test_invoke_chaincode_calls_another_chaincode(op):
    sub(op, "Put", "shared", "from stubcheck")
    r, out = sub(op, "Call", "stubcheck2", ["Put", J("called"), J("via stubcheck")])
    assert out["status"] == 200 and json.loads(out["payload"]) == r.tx_id
    _, got = sub(op, "Call", "stubcheck2", ["Get", J("called")])
    assert json.loads(got["payload"]) == "via stubcheck"
    _, refused = sub(op, "Call", "stubcheck2", ["Refuse", J("no")])
    assert refused["status"] == 500 and json.loads(refused["message"])["code"] == "Refused"


def test_raising_transaction_is_a_clear_error_and_writes_nothing(op):
    with pytest.raises(EndorseError) as e:
        sub(op, "Refuse", "not allowed")
    assert e.value.chaincode_status == 500
    assert e.value.chaincode_error == {"code": "Refused", "message": "not allowed",
                                       "details": {"reason": "test"}}
    with pytest.raises(EvaluateError) as e:
        ev(op, "Crash")
    assert e.value.chaincode_error["code"] == "InternalError"
    assert "boom in user code" in e.value.chaincode_error["message"]
    assert ev(op, "Get", "refused") == ""
    assert ev(op, "Get", "a2") == "two"  # still serving


def test_500_concurrent_transactions_no_lost_or_crossed_replies(op):
    def one(i):
        r = op.submit("Put", [J(f"c{i:03d}"), J(f"value-{i}")])
        return i, r.tx_id, json.loads(r.result)

    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(one, range(500)))
    assert len(results) == 500
    assert all(tx_id == returned for _, tx_id, returned in results), "crossed replies"
    assert len({tx_id for _, tx_id, _ in results}) == 500
    values = ev(op, "GetMany", [f"c{i:03d}" for i in range(500)])
    assert values == [f"value-{i}" for i in range(500)]

    with ThreadPoolExecutor(max_workers=64) as pool:
        reads = list(pool.map(lambda i: (i, ev(op, "Get", f"c{i:03d}")), range(500)))
    assert all(v == f"value-{i}" for i, v in reads)


def _chaincode_pids(fabric_network, peer_id: str) -> list[int]:
    peer_pid = int(fabric_network.layout.pid_file(
        fabric_network.consortium.node(peer_id)).read_text())
    out = subprocess.run(["pgrep", "-s", str(peer_pid), "-f", "ipledger.chaincode.shim.client"],
                         capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_killed_chaincode_is_relaunched_on_next_invoke(op):
    pid = ev(op, "Pid")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        try:
            new_pid = ev(op, "Pid")
            break
        except GatewayError:
            assert time.monotonic() < deadline, "chaincode was not relaunched"
            time.sleep(0.5)
    assert new_pid != pid
    assert ev(op, "Get", "a2") == "two"


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_chaincode_exits_when_its_peer_goes_away(fabric_network, broker):
    assert ev(broker, "Get", "a2") == "two"  # launched on the broker's peer
    cc_pids = _chaincode_pids(fabric_network, "peer0.broker")
    assert cc_pids, "no chaincode process found under the broker's peer"
    peer = fabric_network.consortium.node("peer0.broker")
    os.kill(int(fabric_network.layout.pid_file(peer).read_text()), signal.SIGKILL)
    # Only the peer was killed: its chaincodes must notice the disconnect and exit.
    deadline = time.monotonic() + 30
    while any(map(_running, cc_pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    still_running = [p for p in cc_pids if _running(p)]
    fabric_network.up(log=lambda *_: None)  # restart the peer for the other tests
    assert still_running == [], "chaincode kept running after its peer died"
    deadline = time.monotonic() + 60
    while True:
        try:
            assert ev(broker, "Get", "a2") == "two"
            break
        except GatewayError:
            assert time.monotonic() < deadline
            time.sleep(0.5)
