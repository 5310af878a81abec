"""Fair admission: no organisation's transactions crowd out another's on a peer's chaincode.

Every member of the channel may send proposals to every peer — to customs' peer too, whose endorsement every
record needs. The chaincode runs the transactions of its stream interleaved (inline, a greenlet each, switching
at every round trip to the peer), so a member keeping a thousand heavy proposals in flight (queries over a long
history, proposals it never orders) made every other transaction — customs' own endorsements among them — wait
behind all of them, until they failed on the peer's deadline and nothing could be recorded on the channel.

:class:`Admission` runs at most :data:`PER_ORG_RUNNING` transactions of each organisation (the creator's MSP id in
the signed proposal) at a time; the others wait, in their order of arrival, for one of the same organisation to
finish. An organisation's flood then takes its own share of the chaincode and delays its own proposals, not the
others'. A proposal that would wait longer than :data:`WAIT_MAX_S` is answered at once with :data:`BUSY` (the
gateway's ``503 contract-busy``: send it again) instead of being run: the peer holds every proposal it is simulating
against its commits (Fabric's state lock: a block commits once every simulation begun has ended), so a long queue of
waiting proposals would hold the peer's commits — every record on the channel — until they timed out. The
organisation's identity is read here only to share the work out: the contract authenticates and authorises the
creator itself.
"""
from __future__ import annotations

import math
import time
from collections import deque
from typing import Any, Callable, Mapping

from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import chaincode_shim_pb2, proposal_pb2

PER_ORG_RUNNING = 16   # an organisation's transactions running at once: enough to keep one core busy
WAIT_MAX_S = 5.0       # the longest a proposal waits for its organisation's turn (an honest burst of a few hundred
                       # light transactions waits well under a second)
BUSY = "chaincode busy"   # how the answer to a proposal that waited too long begins (gateway/problems.py)
# The chaincode process's settings of both (on a peer's own chaincode: the peer's IPLEDGER_CHAINCODE_ADMISSION_*,
# which the external builder hands on under these names — chaincode/builder/ccbuilder.py).
PER_ORG_ENV = "CHAINCODE_ADMISSION_PER_ORG"
WAIT_ENV = "CHAINCODE_ADMISSION_WAIT_S"
WAIT_LIMIT_S = 30.0    # the peer's executetimeout: a proposal waiting longer would fail on the peer's deadline anyway


def settings(env: Mapping[str, str]) -> tuple[int, float]:
    """``(per_org, wait_max_s)`` from :data:`PER_ORG_ENV` and :data:`WAIT_ENV` (the defaults when unset). A value
    that is not a whole number of at least 1, or a wait not above 0 and at most :data:`WAIT_LIMIT_S`, is refused
    by name (ValueError): the chaincode does not start on a setting it would have to guess."""
    per_org, wait = PER_ORG_RUNNING, WAIT_MAX_S
    if (text := env.get(PER_ORG_ENV, "").strip()):
        if not text.isascii() or not text.isdigit() or int(text) < 1:
            raise ValueError(f"{PER_ORG_ENV}={text!r}: a whole number of transactions, at least 1")
        per_org = int(text)
    if (text := env.get(WAIT_ENV, "").strip()):
        try:
            wait = float(text)
        except ValueError:
            wait = math.nan
        if not 0 < wait <= WAIT_LIMIT_S:   # NaN too
            raise ValueError(f"{WAIT_ENV}={text!r}: seconds above 0 and at most {WAIT_LIMIT_S:g} (the peer's "
                             "executetimeout)")
    return per_org, wait


def creator_org(msg: chaincode_shim_pb2.ChaincodeMessage) -> str:
    """The MSP id of the creator of ``msg``'s signed proposal ("" when it has none or it cannot be read: those
    share one queue of their own)."""
    if not msg.HasField("proposal"):
        return ""
    try:
        proposal = proposal_pb2.Proposal.FromString(msg.proposal.proposal_bytes)
        header = common_pb2.Header.FromString(proposal.header)
        signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
        return identities_pb2.SerializedIdentity.FromString(signature_header.creator).mspid
    except Exception:  # noqa: BLE001 - a malformed proposal: the stub refuses it when the transaction runs
        return ""


class Admission:
    """Per organisation: how many of its transactions run, and those waiting (with the moment they arrived)."""

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> "Admission":
        """The admission the chaincode process's settings ask for (:func:`settings`)."""
        per_org, wait_max_s = settings(env)
        return cls(per_org, wait_max_s)

    def __init__(self, per_org: int = PER_ORG_RUNNING, wait_max_s: float = WAIT_MAX_S,
                 clock: Callable[[], float] = time.monotonic):
        if per_org < 1:
            raise ValueError("an organisation needs at least one running transaction")
        self.per_org = per_org
        self.wait_max_s = wait_max_s
        self._clock = clock
        self._running: dict[str, int] = {}
        self._waiting: dict[str, deque[tuple[float, Any]]] = {}

    def admit(self, org: str, item: Any) -> bool:
        """Whether ``item`` (a transaction of ``org``) may run now; if not, it waits its turn."""
        if self._running.get(org, 0) < self.per_org:
            self._running[org] = self._running.get(org, 0) + 1
            return True
        self._waiting.setdefault(org, deque()).append((self._clock(), item))
        return False

    def release(self, org: str) -> tuple[Any | None, list]:
        """A transaction of ``org`` finished: ``(the next of its transactions to run, or None; those that waited
        too long, to answer with an error)``. The next one takes the finished one's place."""
        expired: list = []
        queue = self._waiting.get(org)
        now = self._clock()
        while queue:
            arrived, item = queue.popleft()
            if now - arrived > self.wait_max_s:
                expired.append(item)
                continue
            if not queue:
                del self._waiting[org]
            return item, expired
        self._waiting.pop(org, None)
        running = self._running.get(org, 0) - 1
        if running > 0:
            self._running[org] = running
        else:
            self._running.pop(org, None)
        return None, expired

    def expired(self) -> list:
        """The transactions that have waited longer than ``wait_max_s``, taken out of their queues."""
        now, out = self._clock(), []
        for org in list(self._waiting):
            queue = self._waiting[org]
            while queue and now - queue[0][0] > self.wait_max_s:
                out.append(queue.popleft()[1])
            if not queue:
                del self._waiting[org]
        return out

    def waiting(self, org: str | None = None) -> int:
        """How many transactions wait (of ``org``, or of every organisation)."""
        if org is not None:
            return len(self._waiting.get(org, ()))
        return sum(len(q) for q in self._waiting.values())

    def running(self, org: str) -> int:
        return self._running.get(org, 0)
