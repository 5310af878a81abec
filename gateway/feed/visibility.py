"""Who may see a feed item: the contract decides.

Chaincode events reach every channel member's peer, so the feed database holds every authorisation's events
(never commercial data: the contract keeps those out of the payload). Whoever reads them gets only those
of authorisations its organisation may read: :class:`Visibility` asks the contract (``GetAuthorisation``
as that org) and caches the answer, per worker, for ``visibility_ttl_s`` at most — and no longer than
until an event that may change it is stored (:data:`VISIBILITY_CHANGING`: a grant, amendment or status
change of the authorisation; parameters and the register of parties, for every authorisation). The
listener storing it may run in another worker; each worker learns of such events from the shared feed
store (one indexed query per request or poll of the feed, :meth:`Visibility.sync`), and an answer given
before one of them is asked again. Entries of the register of parties are shown to customs and to the
party they are about only. On a gateway of several holders' channels an item that names its channel is judged
on that channel (answers are kept per org, channel and authorisation): the same authorisation id on another
holder's channel never opens it.
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
    """May ``org`` read authorisation ``A``? The contract decides (``GetAuthorisation`` as ``org``).

    Each cached answer remembers the feed position up to which the permission changes stored in the feed
    ``store`` were known when the contract was asked; it is used only while no change of its authorisation
    (or of the whole channel) stored after that position is known. Without a store (tests), only the
    items the reader meets drop answers."""

    def __init__(self, service, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic, store=None):
        self.service = service
        self.ttl = ttl
        self.clock = clock
        self.store = store
        # (org, channel or None, authorisation id) -> (allowed, expires, position)
        self._cache: dict[tuple[str, str | None, str], tuple[bool, float, int]] = {}
        self._known = 0  # the feed position up to which the store's permission changes are known
        self._changed: dict[str | None, int] = {}  # authorisation id (None: the channel) -> its newest change
        self._lock = threading.Lock()

    def sync(self) -> None:
        """Learn the permission changes the feed store got since the last look — from whichever worker's
        listener stored them —, so that no answer older than one of them is used again."""
        if self.store is None:
            return
        with self._lock:
            known = self._known
        changes = self.store.events_of_types_after(known, VISIBILITY_CHANGING)
        with self._lock:
            for seq, event_type, authorisation_id in changes:
                scope = None if event_type in CHANNEL_WIDE else authorisation_id
                self._changed[scope] = max(self._changed.get(scope, 0), seq)
                self._known = max(self._known, seq)

    def can_read(self, org: str, authorisation_id: str | None, channel: str | None = None) -> bool:
        """May ``org`` read ``authorisation_id`` (None: a channel-wide item, open to all) — on ``channel`` when
        given (an item's own channel, on a gateway of several), else on the channel that knows it?"""
        self.sync()
        return self._allowed(org, authorisation_id, channel)

    def readable(self, org: str, authorisation_ids, channel: str | None = None) -> list[str]:
        """Those of ``authorisation_ids`` that ``org`` may read (on ``channel`` only, when given; one look at the
        store's changes)."""
        self.sync()
        return [a for a in authorisation_ids if self._allowed(org, a, channel)]

    def _fresh(self, entry: tuple[bool, float, int] | None, authorisation_id: str) -> bool:
        """Whether a cached answer may still be used: within its time, and given after the newest known
        change of its authorisation and of the channel. Under the lock."""
        return entry is not None and entry[1] > self.clock() and \
            entry[2] >= max(self._changed.get(authorisation_id, 0), self._changed.get(None, 0))

    def _allowed(self, org: str, authorisation_id: str | None, channel: str | None = None) -> bool:
        """The answer for ``org`` and ``authorisation_id`` (on ``channel`` when given), from the cache when it
        is fresh (as of the last :meth:`sync`), else from the contract. A channel the gateway no longer serves
        answers 400 unknown-channel: not allowed."""
        if authorisation_id is None:
            return True  # channel-wide (SetParameters): GetParameters is open to every client
        key = (org, channel, authorisation_id)
        with self._lock:
            hit = self._cache.get(key)
            if self._fresh(hit, authorisation_id):
                return hit[0]
            position = self._known  # what the answer about to be asked for is given after
        try:
            self.service.evaluate_json(org, "GetAuthorisation", authorisation_id,
                                       **({"channel": channel} if channel else {}))
            allowed = True
        except Problem as p:
            if p.name == "ambiguous-channel":
                allowed = True   # on several holders' channels, each answering ``org``: readable on each
            elif p.status not in (400, 403, 404):
                raise  # the ledger is unreachable: decide nothing, cache nothing
            else:
                allowed = False
        with self._lock:
            self._cache[key] = (allowed, self.clock() + self.ttl, position)
        return allowed

    def forget(self, authorisation_id: str | None = None) -> None:
        with self._lock:
            if authorisation_id is None:
                self._cache.clear()
            else:
                for key in [k for k in self._cache if k[2] == authorisation_id]:
                    del self._cache[key]

    def filter(self, org: str, items: Iterable[dict]) -> list[dict]:
        """The items ``org`` may see, in their order (one look at the store's changes for them all), each with
        only the alert changes of authorisations ``org`` may read: a transaction may change another
        authorisation's alerts (customs' new thresholds, for every authorisation; a 5151 transfer's exit, the
        receiving one's) — the item is shown, those alerts not."""
        self.sync()
        out = []
        for item in items:
            self.forget_for(item)
            if item.get("event_type") in PARTY_EVENTS:
                if org in (item.get("submitting_org"), (item.get("event") or {}).get("msp_id")):
                    out.append(item)
            elif self._allowed(org, item.get("authorisation_id"), item.get("channel")):
                out.append(self._own_alerts(org, item))
        return out

    def _own_alerts(self, org: str, item: dict) -> dict:
        """``item`` with the alert changes ``org`` may read only (the item itself when that is all of them)."""
        alerts = item.get("alerts") or []
        kept = [a for a in alerts if a.get("authorisation_id") in (None, item.get("authorisation_id"))
                or self._allowed(org, a["authorisation_id"], item.get("channel"))]
        return item if len(kept) == len(alerts) else {**item, "alerts": kept}

    def forget_for(self, item: dict) -> None:
        """Drop the cached answers ``item`` may have changed (its authorisation's, or all for a channel-wide
        change: parameters, the register of parties)."""
        if item.get("event_type") in VISIBILITY_CHANGING:
            self.forget(None if item.get("event_type") in CHANNEL_WIDE else item.get("authorisation_id"))

