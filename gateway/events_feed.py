"""Former home of the live feed, now the package :mod:`gateway.feed` (one job per module): kept as a
re-export so that ``from gateway.events_feed import …`` still works. New code imports from
:mod:`gateway.feed.store`, :mod:`gateway.feed.visibility`, :mod:`gateway.feed.listener` or
:mod:`gateway.feed.sse`."""
from __future__ import annotations

from .feed.listener import EVENT_NAME, EventSource, FabricEventSource, FeedListener
from .feed.sse import peer_closed_check, sse_message, sse_stream
from .feed.store import MAX_BLOCK, SCHEMA, FeedStore, feed_item, gateway_dir, now_text
from .feed.visibility import CHANNEL_WIDE, PARTY_EVENTS, VISIBILITY_CHANGING, Visibility

__all__ = ["CHANNEL_WIDE", "EVENT_NAME", "MAX_BLOCK", "PARTY_EVENTS", "SCHEMA", "VISIBILITY_CHANGING", "EventSource",
           "FabricEventSource", "FeedListener", "FeedStore", "Visibility", "feed_item", "gateway_dir", "now_text",
           "peer_closed_check", "sse_message", "sse_stream"]
