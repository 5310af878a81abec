"""The context of one transaction: stub, cached state, ledger time, caller and its party, the deployment's
customs MSP, parameters, and what the transaction has done so far (goods effects, alert changes, goods it
concerns)."""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from ipledger.chaincode.contract import deployment, keys, roles, timestamps
from ipledger.chaincode.contract import params as _params
from ipledger.chaincode.contract.state import State
from ipledger.chaincode.shim.contract_api import MemberNamedTwice, unique_members


@dataclass
class Tx:
    stub: Any
    state: State
    now: dt.datetime            # ledger time: the transaction timestamp
    tx_id: str
    caller: roles.Caller
    params: dict
    customs_msp: str            # the deployment's customs MSP (deployment.py)
    act: str = ""
    party: roles.Party | None = None  # the caller's role and EORIs (roles.identify), once identified
    commercial: dict | None = None   # from the transient map, never written to public state
    occurred_at: dt.datetime | None = None  # the event's business time (checked by time_rules.business_time)
    # terms of the authorisation an act was declared under, more favourable than those in force when it is
    # recorded (a placement's longer period for discharge): LateRecording states them (time_rules.review_lateness)
    earlier_terms: dict | None = None
    # why the authorisation was not in force when a placement or processing recorded now occurred
    # (authorisations.not_in_force_at; LateRecording)
    not_in_force_then: dict | None = None
    # when the act's declaration was accepted, if earlier than its own occurred_at says: a 5151 reception recorded
    # after its exit takes the exit's date, the one declaration's acceptance (placement; time_rules.legal_time)
    declared_at: dt.datetime | None = None
    effects: list[dict] = field(default_factory=list)        # goods postings, in order
    alert_changes: list[dict] = field(default_factory=list)  # RAISED / UPDATED / CLEARED
    # what the event concerns, as ordered sets (dict keys: no set is ever iterated, so no hash order)
    lots: dict[str, None] = field(default_factory=dict)       # lots whose history this event joins
    batches: dict[str, None] = field(default_factory=dict)
    review_ceilings: dict[tuple[str, str], None] = field(default_factory=dict)   # (authorisation_id, lot cn)
    ceilings_decreased: dict[tuple[str, str], None] = field(default_factory=dict)  # goods left: only a clear
    review_losses: dict[tuple[str, str], None] = field(default_factory=dict)     # (kind, id)

    @classmethod
    def begin(cls, stub: Any, customs_msp: str | None, act: str = "", read_ahead: Sequence[tuple] = ()) -> "Tx":
        """DeploymentNotConfigured (before anything is read) unless the deployment names customs. The
        parameters are read first, with ``read_ahead`` (keys the transaction will read) in the same round
        trip to the peer."""
        customs = deployment.require_customs_msp(customs_msp)
        roles.require_direct_call(stub)
        state = State(stub)
        state.prefetch([keys.params(), *read_ahead])
        return cls(stub=stub, state=state, now=stub.get_tx_timestamp().astimezone(timestamps.UTC),
                   tx_id=stub.get_tx_id(), caller=roles.caller_of(stub), params=_params.load(state),
                   customs_msp=customs, act=act)

    @property
    def recorded_at(self) -> str:
        return timestamps.fmt(self.now)

    def refer(self, kind: str, goods_id: str) -> None:
        """Note that this event belongs to the history of a lot or batch."""
        (self.lots if kind == "LOT" else self.batches)[goods_id] = None

    def transient_json(self, name: str) -> Any | None:
        raw = self.stub.get_transient().get(name)
        if raw is None:
            return None
        from ipledger.chaincode.contract.errors import InvalidEvent

        try:
            return json.loads(bytes(raw).decode("utf-8"), object_pairs_hook=unique_members)
        except MemberNamedTwice as exc:   # last-wins would keep a value the sender's own check may not have seen
            raise InvalidEvent(f"transient '{name}' names the member {exc.name[:40]!r} twice", field=name) from None
        except (UnicodeDecodeError, ValueError, RecursionError):   # RecursionError: nested too deeply to read
            raise InvalidEvent(f"transient '{name}' is not JSON", field=name) from None
