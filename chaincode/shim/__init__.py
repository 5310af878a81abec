"""Go-free Python chaincode shim for Hyperledger Fabric (``peer/chaincode_shim.proto``).

* :mod:`ipledger.chaincode.shim.contract_api` — ``Contract``, ``@transaction``, ``ChaincodeError``;
* :mod:`ipledger.chaincode.shim.client` — client mode (``run_client``, ``python -m ipledger.chaincode.shim.client``);
* :mod:`ipledger.chaincode.shim.server` — server / CCaaS mode (``run_server``, ``python -m ipledger.chaincode.shim.server``);
* :mod:`ipledger.chaincode.shim.stub` — the stub handed to contract code;
* :mod:`ipledger.chaincode.shim.keys` — composite key rules (shared with in-memory stubs).

Importing this package configures no logging and loads none of its modules: each name comes from its module
when first used.
"""
import importlib

# Each public name and the module that defines it, imported on first use: a contract (or the gateway, reading the
# contract's error codes) that imports ``contract_api`` does not load the protocol's handler, stub and transport.
_EXPORTS = {
    "ChaincodeError": "contract_api", "Contract": "contract_api", "transaction": "contract_api",
    "ChaincodeSession": "handler", "PeerCapabilities": "handler", "StreamClosedError": "handler",
    "KV": "interface", "ChaincodeStub": "interface", "HistoryIterator": "interface", "KeyModification": "interface",
    "PeerError": "interface", "QueryPage": "interface", "StateIterator": "interface",
    "create_composite_key": "keys", "split_composite_key": "keys",
    "Stub": "stub",
}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


def run_client(contract, chaincode_json_path, **kw):  # noqa: D103 - thin lazy wrapper
    from ipledger.chaincode.shim.client import run_client as _run

    return _run(contract, chaincode_json_path, **kw)


def run_server(contract, address, chaincode_id, tls_cert=None, tls_key=None, client_ca=None, **kw):  # noqa: D103
    from ipledger.chaincode.shim.server import run_server as _run

    return _run(contract, address, chaincode_id, tls_cert, tls_key, client_ca, **kw)


run_client.__doc__ = "Client mode; see :func:`ipledger.chaincode.shim.client.run_client`."
run_server.__doc__ = "Server (CCaaS) mode; see :func:`ipledger.chaincode.shim.server.run_server`."

__all__ = [
    "ChaincodeError",
    "Contract",
    "transaction",
    "ChaincodeSession",
    "PeerCapabilities",
    "StreamClosedError",
    "KV",
    "ChaincodeStub",
    "HistoryIterator",
    "KeyModification",
    "PeerError",
    "QueryPage",
    "StateIterator",
    "Stub",
    "create_composite_key",
    "split_composite_key",
    "run_client",
    "run_server",
]
