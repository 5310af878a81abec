"""Contracts loaded by subprocess tests through --contract / $CHAINCODE_CONTRACT."""
import time

from ipledger.chaincode.shim.contract_api import Contract, transaction


class Sleepy(Contract):
    """``Sleep`` blocks its thread (run it with worker threads); ``WaitForPeer`` waits on the peer."""

    name = "sleepy"

    @transaction
    def Sleep(self, stub, seconds):
        stub.get_state("started")  # lets the test see the transaction is running
        time.sleep(seconds)
        stub.put_state("slept", b"yes")  # stub calls still work while draining
        return "slept"

    @transaction
    def WaitForPeer(self, stub):
        stub.get_state("gate")  # the test's fake peer holds this answer until it lets the transaction go on
        stub.put_state("slept", b"yes")
        return "slept"

    @transaction
    def Echo(self, stub, value):
        return value
