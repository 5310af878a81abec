"""``ipledger verify`` on the real session network: the channel verifies; tampered copies do not.

Transactions first (stubcheck: plain writes, private data, a key-level policy set by
the operator and then honoured or not; ipledger: the register of parties and an authorisation
granted under AND(customs, operator|broker), with no key-level policy in its namespace),
then ``python -m ipledger.network.cli.verify`` fetches every block from peer0.customs
through Deliver and saves them; then single-byte tampering of saved copies is
named by block (and transaction).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.peer import transaction_pb2

from ipledger.gateway.client import GatewayError
from ipledger.network.cli.verify import main as verify_main
from ipledger.network.fabric.blocks import block_file, block_files

pytestmark = pytest.mark.fabric
J = json.dumps
REPO = Path(__file__).resolve().parents[2]
RUN: dict[str, str] = {}   # output of the verification against the peer


def customs_peer_policy_hex() -> str:
    from ipledger.chaincode.testing.policies import signature_policy
    return signature_policy(["CustomsMSP"]).hex()


@pytest.fixture(scope="module")
def transactions(fabric_network, clients, stubcheck, ipledger_chaincode):
    """Submit the transactions the verification will see; returns what happened."""
    op = clients.contract("OperatorMSP", "stubcheck")
    seen = {"invalid": []}
    op.submit("Put", [J("verify-a"), J("one")])
    clients.contract("BrokerMSP", "stubcheck").submit("PutMany", [J({"verify-b": "2", "verify-c": "3"})])
    op.submit("PutPrivate", [J("priv"), J("verify-p")], transient={"value": b"secret"},
              endorsing_orgs=["OperatorMSP"])
    # Key-level policy: only a customs peer may now change 'verify-sbe'.
    op.submit("Put", [J("verify-sbe"), J("guarded")])
    op.submit("SetKeyPolicy", [J("verify-sbe"), J(customs_peer_policy_hex())])
    with pytest.raises(GatewayError) as refused:
        op.submit("Put", [J("verify-sbe"), J("overwritten")], endorsing_orgs=["OperatorMSP"])
    assert "ENDORSEMENT_POLICY_FAILURE" in str(refused.value)
    seen["invalid"].append(refused.value.tx_id)
    seen["sbe_ok"] = op.submit("Put", [J("verify-sbe"), J("by customs")], endorsing_orgs=["CustomsMSP"]).tx_id
    # The real contract, AND('CustomsMSP.peer', OR('OperatorMSP.peer','BrokerMSP.peer')).
    from tests.integration.realscenario import RealScenario
    scenario = RealScenario(clients, ipledger_chaincode.name)   # customs register the parties
    granted = scenario.grant("FRIPO000777")  # its own id: the session's other suites use FRIPO000001
    scenario.accepted(granted)
    seen["grant"] = granted.tx_id
    from ipledger.chaincode.testing.scenario import HOLDER
    # Registered again: judged, like every key of the contract, by the chaincode policy alone.
    scenario.accepted(scenario.register("OperatorMSP", "holder", [HOLDER], name="registered again"))
    return seen


def run_cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "ipledger.network.cli.verify", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def saved(fabric_network, transactions, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("verify") / "blocks"
    state = str(fabric_network.layout.root)
    proc = run_cli("--state-dir", state, "--peer", "peer0.customs", "--as", "CustomsMSP", "--save", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    RUN["peer"] = proc.stdout
    return out


def test_verify_fetches_every_block_and_passes(saved, fabric_network, transactions):
    proc = run_cli("--from-file", str(saved), "--state-dir", str(fabric_network.layout.root), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    height = fabric_network.peer_height(fabric_network.consortium.node("peer0.customs"))
    files = block_files(saved)
    assert len(files) >= report["blocks_verified"] and report["blocks_verified"] == len(files)
    assert report["blocks_verified"] <= height
    assert report["ok"] and report["problems"] == []
    tx = report["transactions"]
    assert tx["invalid_by_code"].get("ENDORSEMENT_POLICY_FAILURE", 0) >= 1
    assert tx["valid"] + tx["invalid"] == tx["total"]
    cc = report["chaincodes"]
    assert cc["stubcheck"]["valid_txs"] >= 6 and cc["stubcheck"]["invalid_txs"] >= 1
    assert cc["ipledger"]["valid_txs"] >= 3
    assert cc["_lifecycle"]["valid_txs"] >= 12   # 3 chaincodes x (3 approvals + commit)
    assert "AND('CustomsMSP.peer', OR('OperatorMSP.peer', 'BrokerMSP.peer'))" in \
        cc["ipledger"]["definition"]["endorsement_policy"]
    checked = report["checked"]
    assert checked["orderer_signatures"] == report["blocks_verified"] - 1
    assert checked["creator_signatures"] == tx["valid"] - tx["config"]
    assert checked["endorsement_signatures"] >= checked["creator_signatures"]
    evals = checked["policy_evaluations"]
    assert evals.get("key-level", 0) >= 1               # stubcheck's guarded key
    assert evals.get("chaincode", 0) >= 1
    assert evals.get("collection (_lifecycle)", 0) >= 9      # approvals: the org's Endorsement policy
    assert evals.get("chaincode (_lifecycle)", 0) >= 3       # commits: LifecycleEndorsement
    assert checked["keys_with_key_level_policy"] >= 1 and cc["stubcheck"]["keys_with_key_level_policy"] >= 1
    # no key of the contract has a policy of its own, which would replace the chaincode policy for that key
    # (a customs-only one let customs' peer alone write an authorisation, the parameters or the register)
    assert cc["ipledger"]["keys_with_key_level_policy"] == 0
    assert report["invalid_cross_check"]["endorsement_policy_failures_confirmed"] >= 1
    assert report["warnings"] == []


def test_verify_summary_from_the_peer_names_the_counts(saved):
    out = RUN["peer"]
    assert "RESULT: OK" in out
    assert "transactions:" in out and "valid" in out and "ENDORSEMENT_POLICY_FAILURE" in out
    assert "stubcheck" in out and "ipledger" in out and "_lifecycle" in out
    assert "not checked:" in out and "trust anchor:" in out and "genesis.block" in out


def _tampered(saved: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(saved, copy)
    return copy


def _find_tx(saved: Path, chaincode: str, tx_id: str | None = None):
    """(block number, tx index, envelope, payload, raw block) of a VALID tx of ``chaincode``."""
    from fabric_protos.peer import proposal_pb2
    for number, path in block_files(saved):
        raw = path.read_bytes()
        block = common_pb2.Block.FromString(raw)
        flt = block.metadata.metadata[common_pb2.TRANSACTIONS_FILTER]
        for i, data in enumerate(block.data.data):
            env = common_pb2.Envelope.FromString(data)
            payload = common_pb2.Payload.FromString(env.payload)
            chdr = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
            if chdr.type != common_pb2.ENDORSER_TRANSACTION or flt[i] != transaction_pb2.VALID:
                continue
            ext = proposal_pb2.ChaincodeHeaderExtension.FromString(chdr.extension)
            if ext.chaincode_id.name == chaincode and (tx_id is None or chdr.tx_id == tx_id):
                return number, i, env, chdr.tx_id, raw
    raise AssertionError(f"no VALID {chaincode} transaction in {saved}")


def _flip(raw: bytes, needle: bytes, offset: int) -> bytes:
    at = raw.find(needle)
    assert at >= 0 and raw.find(needle, at + 1) < 0, "needle not found exactly once"
    pos = at + offset
    return raw[:pos] + bytes([raw[pos] ^ 0x01]) + raw[pos + 1:]


def _verify_copy(copy: Path, fabric_network, capsys) -> tuple[int, str]:
    code = verify_main(["--from-file", str(copy), "--state-dir", str(fabric_network.layout.root)])
    return code, capsys.readouterr().out


def _action_payload(env) -> transaction_pb2.ChaincodeActionPayload:
    payload = common_pb2.Payload.FromString(env.payload)
    t = transaction_pb2.Transaction.FromString(payload.data)
    return transaction_pb2.ChaincodeActionPayload.FromString(t.actions[0].payload)


def test_one_flipped_byte_in_a_transaction_payload_names_the_block(saved, tmp_path, fabric_network, capsys,
                                                                   transactions):
    copy = _tampered(saved, tmp_path)
    number, index, env, tx_id, raw = _find_tx(copy, "ipledger", transactions["grant"])
    # One byte of the invocation (the chaincode arguments) inside the transaction payload.
    invocation = _action_payload(env).chaincode_proposal_payload
    block_file(copy, number).write_bytes(_flip(raw, invocation, len(invocation) - 2))
    code, out = _verify_copy(copy, fabric_network, capsys)
    assert code == 1, out
    assert f"RESULT: INCONSISTENT at block {number}" in out
    assert f"block {number}: data hash:" in out
    assert f"block {number}, tx {index} ({tx_id}): creator signature" in out
    assert f"block {number}, tx {index} ({tx_id}): transaction form: marked VALID but " \
           "INVALID_ENDORSER_TRANSACTION: the proposal hash" in out


def test_a_changed_previous_hash_names_the_block(saved, tmp_path, fabric_network, capsys):
    copy = _tampered(saved, tmp_path)
    files = block_files(copy)
    number = files[len(files) // 2][0]
    raw = block_file(copy, number).read_bytes()
    block = common_pb2.Block.FromString(raw)
    block_file(copy, number).write_bytes(_flip(raw, block.header.previous_hash, 5))
    code, out = _verify_copy(copy, fabric_network, capsys)
    assert code == 1, out
    assert f"RESULT: INCONSISTENT at block {number}" in out
    assert f"block {number}: hash chain: previous_hash" in out
    assert f"block {number}: orderer signature" in out     # the orderer signed the original header


def test_a_changed_endorsement_signature_names_the_transaction(saved, tmp_path, fabric_network, capsys,
                                                               transactions):
    copy = _tampered(saved, tmp_path)
    number, index, env, tx_id, raw = _find_tx(copy, "ipledger", transactions["grant"])
    cap = _action_payload(env)
    assert len(cap.action.endorsements) == 2            # customs and operator or broker
    sig = cap.action.endorsements[1].signature
    block_file(copy, number).write_bytes(_flip(raw, sig, len(sig) - 2))
    code, out = _verify_copy(copy, fabric_network, capsys)
    assert code == 1, out
    assert f"RESULT: INCONSISTENT at block {number}" in out
    assert f"block {number}, tx {index} ({tx_id}): endorsement signature: endorsement 1 by" in out
    assert f"block {number}, tx {index} ({tx_id}): endorsement policy:" in out
    assert "AND('CustomsMSP.peer', OR('OperatorMSP.peer', 'BrokerMSP.peer'))" in out
