"""Webhook subscriptions: who is sent which alerts (the organisation's ``gateway/webhooks.json``, mode 0600)."""
from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import re
import secrets
import urllib.parse
from pathlib import Path

from ipledger.gateway import moments
from ipledger.gateway.client_tls import is_loopback
from ipledger.gateway.feed.store import now_text
from ipledger.gateway.filestore import CorruptFileError, JsonFile, require_owner_only

CHANNEL_NAME = re.compile(r"[a-z][a-z0-9.-]{0,248}")   # Fabric's channel names
AUTHORISATION_ID = re.compile(r"[!-~]{1,128}")          # the contract's identifiers: printable ASCII, no space
ALERT_TYPES = ("DeadlineApproaching", "DeadlineOverdue", "BillOfDischargeDue", "BillOfDischargeLate",
               "YieldDeviation", "BalanceDiscrepancy", "CeilingNear", "LossRateHigh", "ExitUnconfirmed",
               "AuthorisationSuspended", "AuthorisationExpiring", "LateRecording",
               "DeclarationAcrossChannels")   # the last: customs' gateway's own (gateway/feed/declarations.py)


class WebhookError(RuntimeError):
    """A subscription cannot be added or changed as asked (its URL, secret or filters refused)."""


class Subscriptions:
    """The subscription file (like the API key file, a :class:`~ipledger.gateway.filestore.JsonFile`: locked, atomic
    writes, mode 0600)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        # kept: lost after it was written, it is an error, not "no subscriptions" (their deliveries would fail)
        self._file = JsonFile(self.path, empty=lambda: {"version": 1, "subscriptions": {}}, check=self._check_shape,
                              kept=True)

    def _check_shape(self, data) -> None:
        subs = data.get("subscriptions") if isinstance(data, dict) else None
        if not isinstance(subs, dict) or not all(isinstance(r, dict) and r.get("id") == k for k, r in subs.items()):
            raise CorruptFileError(self.path, "not an ipledger webhook file")

    def _read(self) -> dict:
        return self._file.read()

    def check(self) -> None:
        """At start: the file, when there is one, readable by its owner only (it holds the signing secrets) and
        of this shape (WebhookError, CorruptFileError — each naming it)."""
        if self.path.exists():
            require_owner_only(self.path, "webhook file", WebhookError)   # it holds the signing secrets
        self._read()

    def add(self, url: str, org: str, secret: str | None = None, types: list[str] | None = None,
            label: str = "", *, channels: list[str] | None = None,
            authorisations: list[str] | None = None, since: str | None = None) -> tuple[dict, str]:
        """A new subscription: (its public record, its secret). ``types``, ``channels``, ``authorisations``: the
        alerts it wants, each list empty for all (:func:`wants`); whether the gateway serves those channels is the
        caller's to check (the command line does). ``since`` (the command line: when it is made): the recorded
        alerts of transactions recorded before it (less :data:`SINCE_MARGIN_S`) are not sent — the feed read again
        from block 0 (its database lost) would otherwise send a new subscription the channel's whole past."""
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", url or ""):
            raise WebhookError(f"not an http(s) URL: {url!r}")
        try:
            parts = urllib.parse.urlsplit(url)
            host = parts.hostname or ""
        except ValueError as exc:   # e.g. an unclosed IPv6 bracket
            raise WebhookError(f"not an http(s) URL: {url!r} ({exc})") from None
        if parts.username is not None or parts.password is not None:
            raise WebhookError("a webhook URL carries no user name or password (the URL is kept, listed and backed up "
                               "as it is): the receiver checks each delivery's signature with the subscription's secret")
        if (refused := not_a_subscriber(host)) is not None:
            raise WebhookError(f"{host} is {refused}: not a webhook receiver's")
        if url.startswith("http://") and not is_loopback(host):
            raise WebhookError(f"alerts carry the authorisations' data: an https:// URL for another host than this "
                               f"one, not {url!r}")
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,64}", org or ""):
            raise WebhookError(f"invalid org (MSP id) {org!r}")
        unknown = sorted(set(types or ()) - set(ALERT_TYPES))
        if unknown:
            raise WebhookError(f"unknown alert type(s) {', '.join(unknown)}; types are: {', '.join(ALERT_TYPES)}")
        for what, names, pattern in (("channel", channels, CHANNEL_NAME),
                                     ("authorisation id", authorisations, AUTHORISATION_ID)):
            bad = [name for name in names or () if not isinstance(name, str) or not pattern.fullmatch(name)]
            if bad:
                raise WebhookError(f"invalid {what} {str(bad[0])[:80]!r}")
        secret = secret or base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        if len(secret) < 16:
            raise WebhookError("the secret must have at least 16 characters")
        with self._file.update() as data:
            sub_id = secrets.token_hex(6)
            record = {"id": sub_id, "url": url, "org": org, "secret": secret, "types": sorted(set(types or [])),
                      "channels": sorted(set(channels or [])), "authorisations": sorted(set(authorisations or [])),
                      **({"since": since} if since else {}),
                      "label": label, "created_at": now_text(), "removed_at": None}
            data["subscriptions"][sub_id] = record
        return public(record), secret

    def remove(self, sub_id: str) -> bool:
        """Mark the subscription removed (its record stays, for the delivery log) and forget its secret — nothing is
        sent to a removed subscription —, and those of any removed before (an earlier version kept them)."""
        with self._file.update() as data:
            rec = data["subscriptions"].get(sub_id)
            if rec is None or rec.get("removed_at"):
                return False
            rec["removed_at"] = now_text()
            for other in data["subscriptions"].values():
                if other.get("removed_at"):
                    other.pop("secret", None)
            return True

    def active(self) -> list[dict]:
        return [s for s in self._read()["subscriptions"].values() if not s.get("removed_at")]

    def list(self) -> list[dict]:
        return [public(s) for s in sorted(self._read()["subscriptions"].values(), key=lambda s: s["created_at"])]


def public(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "secret"}


# how long before a subscription was made a transaction may have been recorded and still have its alerts sent to it:
# a transaction's ledger time is its proposal's, which the peers accept up to 15 minutes either side of their
# clocks, and it may commit some time after that
SINCE_MARGIN_S = 1800


def not_a_subscriber(address: str) -> str | None:
    """Why ``address`` (an IP address; anything else: None) is never a subscriber's: a link-local address (the
    cloud's instance metadata service at 169.254.169.254, a neighbour's auto-configured address), the unspecified
    address or a multicast group — so that no webhook URL, nor a name resolving to one, makes the gateway post
    alerts there. Loopback and private addresses are subscribers like any other (a receiver on this host, an ERP on
    the organisation's network)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    return None


def recorded_since(sub: dict, recorded_at: str | None) -> bool:
    """Whether a transaction recorded at ``recorded_at`` is one subscription ``sub`` is sent the alerts of: any,
    for a subscription made without ``since``; else one recorded after it (less :data:`SINCE_MARGIN_S`)."""
    since, when = moments.parse(sub.get("since")), moments.parse(recorded_at)
    return since is None or when is None or when >= since - dt.timedelta(seconds=SINCE_MARGIN_S)


def wants(sub: dict, alert_type: str | None, authorisation_id: str | None = None, channel: str | None = None) -> bool:
    """Whether subscription ``sub`` asked for an alert of this type, authorisation and channel: each of its
    lists (``types``, ``authorisations``, ``channels``; absent in subscriptions made before them) empty for
    all. Whether its organisation may read the alert is asked apart, before sending."""
    return all(not sub.get(field) or value in sub[field]
               for field, value in (("types", alert_type), ("authorisations", authorisation_id),
                                    ("channels", channel)))
