"""The blueprint of the routes served from the gateway's live services (:class:`ipledger.gateway.dashboard.live.Live`):
the feed, alerts and webhook deliveries, audit trails, reports — in that order. One blueprint,
``dashboard_api``, because its endpoints have that name (``dashboard_api.feed``, …) since these routes came
with the dashboard."""
from __future__ import annotations

from ipledger.gateway.api import alerts, audit, feed, reports
from ipledger.gateway.api.routes import blueprint

bp = blueprint("dashboard_api", __name__, feed.ROUTES, alerts.ROUTES, audit.ROUTES, reports.ROUTES)
