"""Chaincode as a service: ``python -m ipledger.chaincode.shim.server`` runs the contract configured from its own
environment — the CHAINCODE_* variables, and IPLEDGER_CUSTOMS_MSP for who customs is."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys

import pytest

from ipledger.chaincode.testing.memstub import identity_pem
from tests.unit.shim.shim_fakepeer import FakePeer, make_signed_proposal
from tests.unit.shim.shim_helpers import run

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


async def _ask(peer: FakePeer, msp: str, fn: str, n: int) -> tuple[int, dict | None, str]:
    txid = f"tx-{msp}-{n}"
    proposal = make_signed_proposal(txid=txid, channel="ch1", mspid=msp, cert_pem=identity_pem(msp, "client"),
                                    args=[fn.encode()])
    r = FakePeer.response(await peer.transaction(fn, txid=txid, proposal=proposal))
    return r.status, (json.loads(r.payload) if r.payload else None), r.message


@pytest.mark.parametrize("customs_msp", ["DouaneMSP", None])
def test_the_chaincode_service_takes_customs_from_its_environment(customs_msp):
    async def body():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": REPO, "CHAINCODE_SERVER_ADDRESS": f"127.0.0.1:{port}",
               "CHAINCODE_ID": "ipledger_1.0:test", "CHAINCODE_CONTRACT": "ipledger.chaincode.contract:InwardProcessingContract",
               "CHAINCODE_TLS_DISABLED": "true"}
        env.pop("IPLEDGER_CUSTOMS_MSP", None)
        if customs_msp:
            env["IPLEDGER_CUSTOMS_MSP"] = customs_msp
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "ipledger.chaincode.shim.server", env=env, cwd=REPO,
                                                    stderr=asyncio.subprocess.PIPE)
        try:
            peer = None
            for _ in range(100):  # wait for the server to listen
                peer = FakePeer()
                task = await peer.connect_to(f"127.0.0.1:{port}")
                await asyncio.wait({task, asyncio.ensure_future(peer.ready.wait())}, timeout=5,
                                   return_when=asyncio.FIRST_COMPLETED)
                if peer.ready.is_set():
                    break
                await peer.disconnect()
                await asyncio.sleep(0.1)
            assert peer is not None and peer.ready.is_set()
            douane = await _ask(peer, "DouaneMSP", "GetParameters", 1)
            customs = await _ask(peer, "CustomsMSP", "GetParameters", 2)
            if customs_msp:
                assert douane[0] == 200 and douane[1]["warn_days"] == 30
                assert customs[0] == 500 and json.loads(customs[2])["code"] == "UnknownParty"
            else:
                for status, _payload, message in (douane, customs):
                    assert status == 500 and json.loads(message)["code"] == "DeploymentNotConfigured"
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
            await peer.disconnect()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    run(body(), timeout=60)
