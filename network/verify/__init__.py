"""Independent verification of a channel's blocks (``ipledger verify``).

An auditor checks, without trusting any peer, that the ledger is intact: hash
chain, orderer signatures, config updates, creators and endorsements of every
VALID transaction against the policies in force. Its command is
``ipledger verify`` (:mod:`ipledger.network.cli.verify`). See :mod:`.verifier` for what
is checked and :data:`.verifier.NOT_CHECKED` for what is not.
"""
from ipledger.network.verify.verifier import Problem, Verifier

__all__ = ["Problem", "Verifier"]
