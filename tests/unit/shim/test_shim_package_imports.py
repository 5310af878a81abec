"""What importing the shim package loads: a contract, and the gateway reading the contract's error codes, see
``contract_api`` without the protocol (handler, stub, transport, the gRPC messages)."""
import subprocess
import sys

PROTOCOL = ("ipledger.chaincode.shim.handler", "ipledger.chaincode.shim.stub", "ipledger.chaincode.shim.transport",
            "fabric_protos.peer.chaincode_shim_pb2", "greenlet")


def loaded_after(statement: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"],
                         check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_the_contracts_error_codes_load_no_protocol():
    loaded = loaded_after("import ipledger.chaincode.contract.errors")
    assert "ipledger.chaincode.shim.contract_api" in loaded
    assert not loaded & set(PROTOCOL), sorted(loaded & set(PROTOCOL))


def test_the_package_names_still_resolve_to_their_modules():
    from ipledger.chaincode import shim
    from ipledger.chaincode.shim import handler, interface, stub

    assert shim.Stub is stub.Stub and shim.PeerError is interface.PeerError
    assert shim.ChaincodeSession is handler.ChaincodeSession
    assert set(shim.__all__) <= set(dir(shim))
    try:
        shim.NoSuchName
    except AttributeError as exc:
        assert "NoSuchName" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")
