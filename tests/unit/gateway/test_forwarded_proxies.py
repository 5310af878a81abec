"""Behind a TLS proxy not on the gateway's host, ``gateway serve --forwarded-allow-ips`` names the proxies whose
forwarded headers gunicorn believes."""
from __future__ import annotations

import pytest

from ipledger.gateway.config import ENVIRONMENT
from ipledger.gateway.server import forwarded_allow_ips_refused, gunicorn_options


def test_the_proxies_named_reach_gunicorn():
    assert gunicorn_options("0.0.0.0:8080", 2, 8, 30, "info")["forwarded_allow_ips"] == "127.0.0.1"
    options = gunicorn_options("0.0.0.0:8080", 2, 8, 30, "info", None, "10.42.0.0/16,127.0.0.1")
    assert options["forwarded_allow_ips"] == "10.42.0.0/16,127.0.0.1"


def test_gunicorn_believes_the_named_proxy_and_no_other():
    """gunicorn's own request parsing: a request from the proxy's network saying https is https."""
    from gunicorn.config import Config
    from gunicorn.http.message import Request
    from gunicorn.http.unreader import IterUnreader

    def scheme(peer: str) -> str:
        cfg = Config()
        cfg.set("forwarded_allow_ips", gunicorn_options("0.0.0.0:8080", 2, 8, 30, "info", None,
                                                        "10.42.0.0/16")["forwarded_allow_ips"])
        raw = b"GET /dashboard/ HTTP/1.1\r\nHost: gw.example.org\r\nX-Forwarded-Proto: https\r\n\r\n"
        return Request(cfg, IterUnreader([raw]), (peer, 40000)).scheme
    assert scheme("10.42.0.17") == "https"
    assert scheme("192.0.2.9") == "http"


@pytest.mark.parametrize("value,refused", [("127.0.0.1", False), ("10.42.0.0/16, 127.0.0.1", False),
                                           ("::1", False), ("*", True), ("proxy.example", True), ("", True)])
def test_only_addresses_and_networks_are_taken(value, refused):
    assert (forwarded_allow_ips_refused(value) is not None) == refused


def test_gateway_start_passes_the_setting_on():
    assert "IPLEDGER_FORWARDED_ALLOW_IPS" in ENVIRONMENT
