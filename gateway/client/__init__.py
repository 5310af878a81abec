"""A thin client of the Fabric peer Gateway service (Fabric v3), after hyperledger/fabric-gateway.

    from ipledger.gateway.client import Endpoint, Gateway, load_identity

    identity, signer = load_identity(msp_dir, "OperatorMSP")
    endpoint = Endpoint("127.0.0.1:7101", tls_root_cert=tls_ca_pem_path,
                        server_name="peer0.operator.ipledger.example")
    with Gateway.connect(endpoint, identity, signer) as gateway:
        contract = gateway.network("inward-processing").contract("ipledger")
        balances = contract.evaluate("GetBalances", ["FRIPO000001"])
        result = contract.submit("PlaceUnderProcedure", [payload_json])   # SubmitResult
"""
from ipledger.gateway.client.checkpoint import Checkpoint, FileCheckpointer
from ipledger.gateway.client.gateway import Contract, Gateway, Network, RetryPolicy, SubmitResult, Timeouts
from ipledger.network.fabric.connection import Endpoint, dial, tls_cert_hash
from ipledger.network.fabric.deliver import BlockStream, deliver_blocks, seek_envelope
from ipledger.network.fabric.errors import (ChaincodeEventsError, CommitError, CommitStatusError, DeliverError, EndorseError,
                     EvaluateError, GatewayError, SubmitError)
from ipledger.gateway.client.events import ChaincodeEvent, ChaincodeEventStream
from ipledger.network.fabric.identity import X509Identity
from ipledger.network.fabric.local_msp import MSPError, load_identity
from ipledger.gateway.client.proposal import Proposal, build_proposal, transaction_id
from ipledger.network.fabric.rpcstatus import ErrorDetail
from ipledger.network.fabric.signing import Signer, low_s, sha256

__all__ = [
    "BlockStream", "ChaincodeEvent", "ChaincodeEventStream", "ChaincodeEventsError", "Checkpoint",
    "CommitError", "CommitStatusError", "Contract", "DeliverError", "EndorseError", "Endpoint",
    "ErrorDetail", "EvaluateError", "FileCheckpointer", "Gateway", "GatewayError", "MSPError", "Network",
    "Proposal", "RetryPolicy", "Signer", "SubmitError", "SubmitResult", "Timeouts", "X509Identity",
    "build_proposal", "deliver_blocks", "dial", "load_identity", "low_s", "seek_envelope", "sha256",
    "tls_cert_hash", "transaction_id",
]
