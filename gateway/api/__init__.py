"""The REST API's blueprints: events (submit), queries (evaluate), health/metrics, docs, and the routes of
the live services — feed, alerts, audit, reports (one blueprint: :mod:`.live`). Each module declares its
routes with their OpenAPI operations (:mod:`.routes`)."""
