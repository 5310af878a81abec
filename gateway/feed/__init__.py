"""The live feed: the contract's chaincode events, stored once, shown to whoever may see them.

One listener per gateway *installation* writes, any number of readers read:

* every gunicorn worker starts a :class:`~ipledger.gateway.feed.listener.FeedListener` thread; the one that holds
  the lock file ``<state>/<org name>/gateway/feed.lock`` (``flock``) listens, the others wait for the lock
  (a worker that dies releases it, and another takes over);
* the listener reads ``ChaincodeEvents(channel, ipledger)`` (:mod:`ipledger.gateway.client.events`) from the
  stored :class:`~ipledger.gateway.client.FileCheckpointer` (``<state>/<org name>/gateway/feed.checkpoint.json``),
  or from block 0 the first time, stores each transaction's ``ipledger.events`` payload (a block's together, in
  one database transaction) in the feed
  database ``<state>/<org name>/gateway/dashboard.sqlite`` (``INSERT OR IGNORE`` on the tx id), runs the
  hooks (the webhook router queues its deliveries in the same database) and only then moves the
  checkpoint: after a crash in between the transaction comes again and is ignored — no event is missed,
  none stored twice. A hook that fails is retried with back-off and the checkpoint waits: nothing a hook
  should have done is lost;
* the Server-Sent-Events responses of every worker read the database (``seq`` order = block order);
  each item's SSE ``id`` is ``<block>:<tx id>`` and ``Last-Event-ID`` resumes after it.

Chaincode events reach every channel member's peer, so the store holds every authorisation's events
(never commercial data: the contract keeps those out of the payload). Whoever reads them gets only those
of authorisations its organisation may read: :class:`~ipledger.gateway.feed.visibility.Visibility` asks the
contract (``GetAuthorisation`` as that org, cached ``visibility_ttl_s`` per worker; an amendment, grant or
status change of the authorisation stored in the shared database, by any worker's listener, makes every
worker ask again).

The database also keeps the **list of authorisation ids** the gateway has seen in chaincode events
(the contract has no "list authorisations" query), plus ids added by hand (dashboard form or
``POST /api/v1/dashboard/authorisations``).

One job per module (import them directly; this package re-exports nothing):

* :mod:`ipledger.gateway.feed.store` — the feed database (:class:`FeedStore`: events, authorisation ids, the
  endorsement cache, the webhook tables), the feed item (:func:`feed_item`), where the files live;
* :mod:`ipledger.gateway.feed.visibility` — who may see which item (:class:`Visibility`);
* :mod:`ipledger.gateway.feed.listener` — the chaincode-event listener (:class:`FeedListener`, its lock and
  checkpoint; :class:`FabricEventSource`);
* :mod:`ipledger.gateway.feed.sse` — the Server-Sent-Events body (:func:`sse_stream`) and the closed-client check.
"""
