"""Who may see a feed item: the contract decides.

Chaincode events reach every channel member's peer, so the feed database holds every authorisation's
events (never commercial data: the contract keeps those out of the payload). Whoever reads them gets only
those of authorisations its organisation may read: :class:`Visibility` asks the contract
(``GetAuthorisation`` as that org, cached ``visibility_ttl_s``; an amendment, grant or status change of
the authorisation drops the cached answer when the reader meets it in the feed). Entries of the register
of parties are shown to customs and to the party they are about only.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

from ipledger.gateway.problems import Problem

# events that can change who may read an authorisation (mandates, holder, status)
VISIBILITY_CHANGING = frozenset({"GrantAuthorisation", "AmendAuthorisation", "RevokeAuthorisation",
                                 "SuspendAuthorisation", "ReinstateAuthorisation", "SetParameters",
                                 "RegisterParty", "WithdrawParty"})
# events that change who may read across the channel (every cached answer is dropped)
CHANNEL_WIDE = frozenset({"SetParameters", "RegisterParty", "WithdrawParty"})
# the register of parties: an entry is shown to customs (who wrote it) and to the party it is about only, as
# GetParties does — another representative's or holder's EORIs are not everyone's business
PARTY_EVENTS = frozenset({"RegisterParty", "WithdrawParty"})


class Visibility:
    """May ``org`` read authorisation ``A``? The contract decides (``GetAuthorisation`` as ``org``)."""

    def __init__(self, service, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.service = service
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def can_read(self, org: str, authorisation_id: str | None) -> bool:
        if authorisation_id is None:
            return True  # channel-wide (SetParameters): GetParameters is open to every client
        key = (org, authorisation_id)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[1] > self.clock():
            return hit[0]
        try:
            self.service.evaluate_json(org, "GetAuthorisation", authorisation_id)
            allowed = True
        except Problem as p:
            if p.status not in (400, 403, 404):
                raise  # the ledger is unreachable: decide nothing, cache nothing
            allowed = False
        with self._lock:
            self._cache[key] = (allowed, self.clock() + self.ttl)
        return allowed

    def forget(self, authorisation_id: str | None = None) -> None:
        with self._lock:
            if authorisation_id is None:
                self._cache.clear()
            else:
                for key in [k for k in self._cache if k[1] == authorisation_id]:
                    del self._cache[key]

    def filter(self, org: str, items: Iterable[dict]) -> list[dict]:
        out = []
        for item in items:
            self.forget_for(item)
            if item.get("event_type") in PARTY_EVENTS:
                if org in (item.get("submitting_org"), (item.get("event") or {}).get("msp_id")):
                    out.append(item)
            elif self.can_read(org, item.get("authorisation_id")):
                out.append(item)
        return out

    def forget_for(self, item: dict) -> None:
        """Drop the cached answers ``item`` may have changed (its authorisation's, or all for a channel-wide
        change: parameters, the register of parties)."""
        if item.get("event_type") in VISIBILITY_CHANGING:
            self.forget(None if item.get("event_type") in CHANNEL_WIDE else item.get("authorisation_id"))

