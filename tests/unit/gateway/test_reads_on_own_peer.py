"""An organisation's gateway reads its own peer's copy of the ledger: every evaluation names its own organisation as
the target (the Fabric Gateway would otherwise run it on another organisation's peer when its own is not ready —
the representative's, which holds no customs values, failed the holder's lot reads with 502 while the holder's peer
was being rebuilt). Its own peer not ready is 503, to try again."""
from __future__ import annotations

import grpc

from . import test_fabric_client_outcomes as outcomes
from .conftest import bearer

user, peer_server, peer, contract, fabric_app = (outcomes.user, outcomes.peer_server, outcomes.peer, outcomes.contract,
                                                 outcomes.fabric_app)


def test_every_read_and_each_replay_lookup_is_evaluated_on_the_own_organisations_peer(fabric_app, contract, peer,
                                                                                    keys):
    client = fabric_app.test_client()
    headers = bearer(keys[(outcomes.ORG, "clerk")])
    assert client.post(outcomes.EVENTS, json=outcomes.move_body(), headers=headers).status_code == 201
    assert client.post(outcomes.EVENTS, json=outcomes.move_body(), headers=headers).status_code == 200  # replay: its block
    assert peer.recorded.evaluate, "no evaluation made"
    assert all(list(r.target_organizations) == [outcomes.ORG] for r in peer.recorded.evaluate)


def test_the_own_peer_not_ready_is_unavailable_not_another_organisations_answer(fabric_app, peer, keys):
    def not_ready(request, context):   # Fabric v3.1's gateway (internal/pkg/gateway/evaluate.go), as it answers
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no peers available to evaluate chaincode ipledger in "
                                                           "channel inward-processing")
    peer.on_evaluate = not_ready
    r = fabric_app.test_client().get("/api/v1/lots/L1", headers=bearer(keys[(outcomes.ORG, "clerk")]))
    assert r.status_code == 503 and r.json["type"] == outcomes.PROBLEMS + "service-unavailable", r.json
    assert "own peer cannot answer yet" in r.json["detail"] and r.headers["Retry-After"]
    assert [list(e.target_organizations) for e in peer.recorded.evaluate] == [[outcomes.ORG]]
