"""Alert webhooks: subscriptions (admins, CLI), signed deliveries, retries, a delivery log.

Subscriptions live in the organisation's own ``<state>/<org name>/gateway/webhooks.json`` (mode 0600:
it holds the signing secrets), managed with ``ipledger gateway webhooks --gateway MSP add URL --org MSP
[--secret S] [--types T,…] [--channels C,…] [--authorisations A,…]`` / ``list`` /
``remove ID`` / ``deliveries`` / ``resend``. A subscription receives the alerts its organisation may read (the
contract decides, as for every query): a broker's subscription never hears of an authorisation the
broker has no mandate for. It may narrow them (:func:`wants`): to some alert types, to some of its gateway's
channels (on customs' gateway, one holder's), to some authorisations.

What is sent:

* **recorded alerts** — every alert change (RAISED / UPDATED / CLEARED) inside a chaincode event, as
  the feed listener stores it (:mod:`ipledger.gateway.feed.listener`); ``alert_id`` = hash of (tx id, position);
* **time alerts** (``DeadlineApproaching`` … ``AuthorisationExpiring``: no transaction, no event) —
  ``GetAlerts`` polled every ``alert_poll_s`` for each subscribed org and authorisation; a new one is
  RAISED, a vanished one CLEARED; ``alert_id`` = hash of (org, authorisation, type, subject, change, the moment
  the alert is about — its deadline, due date, declaration or end of validity — and which raise of it this is),
  the same if the gateway's database is lost and the alert found again.

Each delivery is ``POST URL`` with the JSON body, ``Content-Type: application/json``,
``X-Ipledger-Timestamp: <Unix seconds of this attempt>``,
``X-Ipledger-Signature-V2: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``,
``X-Ipledger-Signature: sha256=<hex HMAC-SHA256(secret, body)>`` (kept for receivers written before the
timestamp was signed), ``X-Ipledger-Alert-Id``, ``X-Ipledger-Delivery`` and ``X-Ipledger-Attempt``. Receivers
check the V2 signature and its timestamp with :func:`verify` (within 5 minutes of their clock): a delivery
captured on its way cannot be played to them again later — the body-only signature does not protect against
that. A 2xx answer delivers it; anything else (or no
whole answer within ``webhook_timeout_s`` — the whole attempt, however slowly the subscriber answers) is
retried after ``webhook_backoff_s`` × 2^(attempt−1) (capped), at most ``webhook_max_attempts`` times, then
marked FAILED; ``ipledger gateway webhooks resend`` queues FAILED ones again (:meth:`Deliveries.resend`).
Deliveries to one subscription go in order (the oldest pending first). **At least once**: a delivery can arrive
twice (e.g. the gateway stopped after the receiver answered but before the result was stored) — de-duplicate on
``alert_id``.

One module a step of a delivery: :mod:`.signing` (the headers a receiver checks), :mod:`.subscriptions`,
:mod:`.deliveries` (the queue and log), :mod:`.router` (alerts into deliveries) and :mod:`.dispatcher` (sending).
"""
import importlib

# Each name and the module that defines it, imported on first use: the feed's declaration watch, which needs the
# subscriptions' predicates only, does not load the dispatcher.
_EXPORTS = {
    "Deliveries": "deliveries", "Dispatcher": "dispatcher", "http_post": "dispatcher", "AlertRouter": "router",
    "SIGNATURE_HEADER": "signing", "SIGNATURE_TOLERANCE_S": "signing", "SIGNATURE_V2_HEADER": "signing",
    "TIMESTAMP_HEADER": "signing", "sign": "signing", "verify": "signing",
    "ALERT_TYPES": "subscriptions", "SINCE_MARGIN_S": "subscriptions", "Subscriptions": "subscriptions",
    "WebhookError": "subscriptions", "public": "subscriptions", "recorded_since": "subscriptions",
    "wants": "subscriptions",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
