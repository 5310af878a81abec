"""The REST API's blueprints: events (submit), queries (evaluate), health/metrics, docs."""
