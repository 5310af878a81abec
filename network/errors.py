"""The errors of network operations: reported to the user as their message, without a traceback
(the ``ipledger`` command prints it and exits non-zero); :func:`printable` for text of others shown to the user."""


class NetworkError(RuntimeError):
    """An operation on the organisation's nodes or the channel failed; the message says why (the CLI prints it
    and exits 1)."""


class AdminError(NetworkError):
    """An administration step cannot be done; the message says why."""


def printable(text: str) -> str:
    """``text`` with every control or invisible format character escaped (``\\x1b``, ``\\u202e``), for what others
    wrote and a command shows: an update file is the proposer's (and whoever handled it may have added a
    "signature" whose MSP id or certificate subject holds such characters), a genesis block the founder's, a
    channel's anchor peers each member's own, chaincode names and policy texts in the blocks the verifier reads
    anyone the orderer admits — a terminal sequence there could move the cursor, add lines, overwrite or hide
    what is shown (a REFUSE, the changes a signer is asked to sign)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
