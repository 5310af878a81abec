"""Fair admission (chaincode/shim/admission.py): one organisation's flood of proposals takes its own share of the
chaincode, not every other organisation's — found by the twenty-first review on a real network, where a member
keeping a thousand heavy queries in flight on customs' peer made customs' own endorsements fail on the peer's
deadline (nothing could be recorded)."""
from __future__ import annotations

import asyncio
import json

import pytest

from ipledger.chaincode.shim.admission import PER_ORG_RUNNING, Admission, creator_org
from ipledger.chaincode.shim.contract_api import Contract, transaction
from tests.unit.shim.shim_fakepeer import CCM, FakePeer, make_signed_proposal
from tests.unit.shim.shim_helpers import HeldAnswer, run, shim_client, wait_until

pytestmark = pytest.mark.timeout(60)


class Gate(Contract):
    name = "gate"

    @transaction
    def OnPeer(self, stub):
        stub.get_state("gate")   # the fake peer holds this answer (HeldAnswer)
        return "through"

    @transaction
    def Echo(self, stub, text):
        return text


def send(peer: FakePeer, org: str, n: int, *args: str):
    txid = f"{org}-{n:04d}"
    raw = [a.encode() for a in args]
    return peer.start_transaction(list(args), txid=txid,
                                  proposal=make_signed_proposal(txid=txid, channel="ch1", mspid=org, args=raw))


def gate_reads(peer: FakePeer) -> int:
    return len(peer.requests(CCM.GET_STATE))


@pytest.mark.parametrize("mode", ["inline", "threads"])
def test_a_flood_of_one_organisation_runs_a_few_at_a_time_and_others_go_through(mode):
    async def body():
        peer = FakePeer()
        held = HeldAnswer(peer)
        kw = {"max_workers": 64} if mode == "threads" else {}
        async with shim_client(Gate(), peer, **kw):
            flood = [send(peer, "OperatorMSP", n, "OnPeer") for n in range(3 * PER_ORG_RUNNING)]
            await wait_until(lambda: gate_reads(peer) >= PER_ORG_RUNNING, what="the first of the flood running")
            await asyncio.sleep(0.2)
            assert gate_reads(peer) == PER_ORG_RUNNING            # the rest wait their organisation's turn
            mine = await asyncio.wait_for(send(peer, "CustomsMSP", 1, "Echo", '"customs"'), 5)
            assert json.loads(FakePeer.response(mine).payload) == "customs"   # not behind the flood
            held.release()
            await wait_until(lambda: all(f.done() for f in flood), what="the flood done", timeout=20)
            assert all(FakePeer.response(f.result()).status == 200 for f in flood)
            assert gate_reads(peer) == 3 * PER_ORG_RUNNING        # each ran once, none lost
    run(body())


def test_a_proposal_that_waited_too_long_is_answered_busy_not_run():
    async def body():
        peer = FakePeer()
        held = HeldAnswer(peer)
        async with shim_client(Gate(), peer) as (_peer, client, _task):
            client.session._admission = Admission(per_org=1, wait_max_s=0.2)
            first = send(peer, "BrokerMSP", 1, "OnPeer")
            await wait_until(lambda: gate_reads(peer) == 1, what="the first running")
            late = send(peer, "BrokerMSP", 2, "OnPeer")
            await asyncio.sleep(0.4)
            held.release()
            assert FakePeer.response(await asyncio.wait_for(first, 5)).status == 200
            answer = await asyncio.wait_for(late, 5)
            assert answer.type == CCM.ERROR and b"chaincode busy with BrokerMSP" in answer.payload
            assert gate_reads(peer) == 1                             # it never ran
    run(body())


def test_proposals_waiting_too_long_are_answered_even_when_none_of_their_organisation_finishes():
    """The peer holds every proposal it is simulating against its commits: a queue that only moved when one of
    its organisation's transactions finished would hold them as long as those ran."""
    async def body():
        peer = FakePeer()
        held = HeldAnswer(peer)
        async with shim_client(Gate(), peer) as (_peer, client, _task):
            client.session._admission = Admission(per_org=1, wait_max_s=0.3)
            first = send(peer, "BrokerMSP", 1, "OnPeer")              # held on the peer: never finishes meanwhile
            await wait_until(lambda: gate_reads(peer) == 1, what="the first running")
            late = send(peer, "BrokerMSP", 2, "OnPeer")
            answer = await asyncio.wait_for(late, 5)
            assert answer.type == CCM.ERROR and b"chaincode busy" in answer.payload
            assert not first.done()
            held.release()
            assert FakePeer.response(await asyncio.wait_for(first, 5)).status == 200
    run(body())


# ----------------------------------------------------------------------------------------- the parts

class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_admission_runs_a_few_of_each_organisation_and_hands_over_in_order():
    a = Admission(per_org=2, wait_max_s=30, clock=Clock())
    assert [a.admit("Op", n) for n in range(4)] == [True, True, False, False]
    assert a.admit("Customs", "c1") is True                           # another organisation's own share
    assert (a.running("Op"), a.waiting("Op"), a.waiting()) == (2, 2, 2)
    assert a.release("Op") == (2, [])                                 # the next of the same organisation
    assert a.release("Op") == (3, [])
    assert a.release("Op") == (None, []) and a.release("Op") == (None, [])
    assert (a.running("Op"), a.waiting()) == (0, 0)


def test_admission_hands_back_what_waited_too_long():
    clock = Clock()
    a = Admission(per_org=1, wait_max_s=30, clock=clock)
    a.admit("Op", "running")
    a.admit("Op", "old")
    clock.now = 20
    a.admit("Op", "recent")
    clock.now = 31
    assert a.release("Op") == ("recent", ["old"])
    a.admit("Op", "again")
    clock.now = 62
    assert a.expired() == ["again"] and a.waiting() == 0
    with pytest.raises(ValueError):
        Admission(per_org=0)


def test_the_creator_organisation_is_read_from_the_signed_proposal():
    msg = CCM(type=CCM.TRANSACTION, txid="t1", channel_id="ch1")
    assert creator_org(msg) == ""
    msg.proposal.CopyFrom(make_signed_proposal(txid="t1", channel="ch1", mspid="CustomsMSP"))
    assert creator_org(msg) == "CustomsMSP"
    msg.proposal.proposal_bytes = b"\xff\x00not a proposal"
    assert creator_org(msg) == ""


def test_busy_answers_are_logged_once_in_a_while_with_their_count(caplog):
    from ipledger.chaincode.shim.handler import ChaincodeSession
    session = ChaincodeSession(Gate(), "gate_1:ab")
    with caplog.at_level("WARNING"):
        for _ in range(500):
            session._note_busy("OperatorMSP")
    lines = [r.getMessage() for r in caplog.records if "answered busy" in r.getMessage()]
    assert lines == ["1 transaction(s) of OperatorMSP answered busy (its other transactions held the chaincode "
                     "for more than 5 s)"]
    session._busy["OperatorMSP"] = (session._busy["OperatorMSP"][0] - 11, session._busy["OperatorMSP"][1])
    with caplog.at_level("WARNING"):
        session._note_busy("OperatorMSP")
    assert "500 transaction(s) of OperatorMSP" in caplog.records[-1].getMessage()
