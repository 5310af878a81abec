"""Answers of the balance query, given again while the channel's height on the peer has not moved.

A balance query goes through the organisation's peer and the contract (about 4 ms on a 2-core machine),
and dashboards and ERPs ask it again and again between two blocks. :class:`AnswerCache` keeps the last
answer per (org, channel, function, arguments) of a function in :data:`CACHED_QUERIES` — queries whose
answer follows from the world state alone, never from the ledger time — with the channel's height on the
peer (qscc ``GetChainInfo``, about 2 ms) read *before* the query was sent. The gateway gives that answer
again only if the height it reads now is the same (:meth:`LedgerService._evaluate_on
<ipledger.gateway.service.LedgerService._evaluate_on>`):

* no block was committed since the height was read, so the world state is the one the query saw or a newer
  one that no block has changed since — the same. A height read first is a lower bound of the state the
  query saw: an answer computed on a newer state is only dropped sooner, never given for an older one;
* whoever wrote (this gateway, another organisation's, a client without any gateway), the next query sees
  the peer's new height: nothing has to tell the cache, and a submit answered by the peer is seen by the
  next query of any worker;
* ``max_age_s`` bounds how long an answer is given again at all: on an organisation with several peers,
  Fabric's gateway may read the height on one and run the query on another that is one block behind.

An answer keeps its own ``as_of`` (when the peer computed it: the balances are unchanged since). Refusals
and failures are never kept.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Hashable

# The contract's queries whose answer is a function of the world state alone (queries/get_balances): the
# one dashboards and ERPs poll. Not GetAuthorisation or GetLot (their status depends on the ledger time),
# nor the histories (large answers, read once).
CACHED_QUERIES = frozenset({"GetBalances"})


class AnswerCache:
    """At most ``size`` answers (least recently used dropped first), each given again only for the height it
    was stored with and for ``max_age_s`` seconds. Thread-safe: one per worker process."""

    def __init__(self, max_age_s: float, size: int = 4096, clock: Callable[[], float] = time.monotonic):
        if max_age_s <= 0:
            raise ValueError("max_age_s must be positive (no cache: do not build one)")
        self.max_age_s = max_age_s
        self.size = size
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: OrderedDict[Hashable, tuple[int, float, bytes]] = OrderedDict()

    def get(self, key: Hashable, height: int) -> bytes | None:
        """The answer stored for ``key`` at this ``height``, if younger than ``max_age_s``; else None."""
        with self._lock:
            entry = self._answers.get(key)
            if entry is None:
                return None
            stored_height, stored_at, answer = entry
            if stored_height != height or self._clock() - stored_at > self.max_age_s:
                del self._answers[key]
                return None
            self._answers.move_to_end(key)
            return answer

    def put(self, key: Hashable, height: int, answer: bytes) -> None:
        """Keep ``answer``, computed by a query sent after the channel's height ``height`` was read."""
        with self._lock:
            self._answers[key] = (height, self._clock(), answer)
            self._answers.move_to_end(key)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._answers)
