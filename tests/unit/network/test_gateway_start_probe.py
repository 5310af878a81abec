"""``ipledger gateway start`` waits until the gateway it started answers: started on an address another
organisation's gateway already held, it took that gateway's /healthz for its own, printed "started" and exited 0
while its own process died of "Address already in use" and the organisation's credentials named the other's URL.
The probe now checks whose gateway answers, and a bind failure is said plainly."""
from __future__ import annotations

import http.server
import json
import threading

import pytest

from ipledger.network.cli import gateway_daemon as daemon


@pytest.fixture
def answering():
    """A server on 127.0.0.1 answering /healthz as a gateway of ``answering.body``."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            payload = json.dumps(server.body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.body = {"status": "ok", "orgs": ["OperatorMSP"]}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def test_the_probe_takes_only_the_organisations_own_gateway(answering):
    assert daemon.healthy(answering.url, org="OperatorMSP")
    assert not daemon.healthy(answering.url, org="BrokerMSP")        # the operator's gateway is not the broker's
    assert daemon.healthy(answering.url)                              # (whoever answers, without an org)
    answering.body = {"status": "ok"}                                 # naming none: not a gateway of this version
    assert not daemon.healthy(answering.url, org="OperatorMSP")


def test_a_bind_failure_is_said_first():
    tail = "[ERROR] Connection in use: ('127.0.0.1', 8081)\n[ERROR] connection to ('127.0.0.1', 8081) failed: " \
           "[Errno 98] Address already in use"
    message = str(daemon._not_started("BrokerMSP's gateway", "http://127.0.0.1:8081", tail))
    assert message.startswith("BrokerMSP's gateway did not become healthy at http://127.0.0.1:8081: the address "
                              "127.0.0.1:8081 is in use by another process")
    assert "Errno 98" in message
