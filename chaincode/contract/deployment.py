"""Who customs is: a fact of the deployment, not of the code.

The contract names no organisation. Customs' MSP id comes from the environment variable
``IPLEDGER_CUSTOMS_MSP`` of the chaincode process:

* peer-launched (external builder, package type ``ipledger-python``): the package manifest
  ``ipledger-chaincode.json`` carries ``"customs_msp"`` (written from the consortium file by
  ``ipledger chaincode package``) and the builder's ``run`` puts it into the chaincode's environment;
* chaincode as a service (``python -m ipledger.chaincode.shim.server``): the service's own environment, beside its
  ``CHAINCODE_*`` variables.

What makes it trustworthy is not the package: Fabric's chaincode definition does not include the
package, and each organisation installs and approves its own. An organisation could run a package naming
itself customs on its own peer — and gain nothing: every act needs the endorsement of customs' own peer
(the chaincode endorsement policy, which judges every key of the contract) with an identical result, and customs' peer runs customs' package; what that organisation's
peer would then show it is only what its own peer already stores.

It is read once per process (:func:`customs_msp_from_environment`); tests give the contract its customs
MSP directly (``InwardProcessingContract(customs_msp=...)``). Unset, empty or not an MSP id: the contract
is not configured, and every act and query fails closed with ``DeploymentNotConfigured``.

Who the *other* parties are (holders, representatives, their EORIs) is not deployment but ledger state:
the register of parties customs keep (``parties.py``).
"""
from __future__ import annotations

import functools
import os
import re

from ipledger.chaincode.contract.errors import DeploymentNotConfigured

ENV = "IPLEDGER_CUSTOMS_MSP"

# An MSP id as Fabric channel configurations use them (and the register's msp_id pattern).
_MSP_ID = re.compile(r"[A-Za-z0-9.-]{1,64}")


def is_msp_id(value: object) -> bool:
    return isinstance(value, str) and _MSP_ID.fullmatch(value) is not None


@functools.lru_cache(maxsize=1)
def customs_msp_from_environment() -> str | None:
    """``IPLEDGER_CUSTOMS_MSP`` of this process, read once (None when unset or empty)."""
    return os.environ.get(ENV) or None


def require_customs_msp(customs_msp: str | None) -> str:
    """The customs MSP id, or DeploymentNotConfigured (fail closed) when there is none or it is no MSP id."""
    if not customs_msp:
        raise DeploymentNotConfigured(
            f"the contract does not know which organisation is customs: the deployment sets {ENV} (the package "
            f"manifest's customs_msp, or the chaincode service's environment)", variable=ENV)
    if not is_msp_id(customs_msp):
        raise DeploymentNotConfigured(f"{ENV} is not an MSP id", variable=ENV)
    return customs_msp
