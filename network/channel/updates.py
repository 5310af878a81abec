"""Config update files: UPDATE.pb and UPDATE.json, their signatures, and how far they are.

One concept, the update an org admin holds on their own machine: the file itself (``UpdateFile``), an
admin's signature added offline (``sign``), and the assessment shown to every signer (``assess``: which
signatures count, which policies the change needs, whether they are met). Nothing here talks to a node.
The errors of every ``ipledger admin`` step are defined here, the module the others build on.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from fabric_protos.common import common_pb2, configtx_pb2

from ipledger.network.fabric.config import ConfigError, show
from ipledger.network.files import write_atomically
from ipledger.network.fabric.config_signatures import (Signer, evaluate, mark_duplicates, sign_update, signer_for_identity,
                                                       signers)
from ipledger.network.fabric.config_update import (apply_update, check_update, compute_update, read_envelope, required_policies,
                                                   summarize, update_envelope, with_update_envelope)
from ipledger.network.fabric.local_msp import MSPError, load_identity
from ipledger.network.errors import AdminError, printable


FORMAT = "ipledger-config-update/1"


class Refused(AdminError):
    """The update does not (yet) meet the policies it needs; nothing was sent."""


# ----------------------------------------------------------------------------- update files

@dataclass
class UpdateFile:
    """UPDATE.pb (the envelope the orderer gets) + UPDATE.json (base config and proposal)."""

    path: Path
    envelope: common_pb2.Envelope
    cue: configtx_pb2.ConfigUpdateEnvelope
    update: configtx_pb2.ConfigUpdate
    meta: dict
    base: configtx_pb2.Config

    @staticmethod
    def sidecar(path: Path) -> Path:
        return Path(path).with_suffix(".json")

    @classmethod
    def load(cls, path: Path | str) -> "UpdateFile":
        path = Path(path)
        try:
            env, cue, update = read_envelope(path.read_bytes())
        except OSError as e:
            raise AdminError(f"cannot read {path}: {e.strerror}") from e
        except Exception as e:  # noqa: BLE001 - protobuf decode errors have no common base
            raise AdminError(f"{path} is not a config update envelope: {e}") from e
        side = cls.sidecar(path)
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError) as e:
            raise AdminError(f"{side} (written next to {path.name} by 'ipledger admin propose') "
                             f"is missing or unreadable: {e}") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise AdminError(f"{side}: not an ipledger update description")
        base = configtx_pb2.Config()
        try:
            base.ParseFromString(base64.b64decode(meta["base_config"], validate=True))
        except Exception as e:  # noqa: BLE001 - a missing key, bad base64, protobuf decode errors
            raise AdminError(f"{side}: its base configuration is unreadable ({type(e).__name__})") from None
        return cls(path, env, cue, update, meta, base)

    @classmethod
    def create(cls, path: Path, base: configtx_pb2.Config, base_block: int,
               updated: configtx_pb2.Config, channel: str, proposal: dict) -> "UpdateFile":
        update = compute_update(base, updated, channel)
        env = update_envelope(update)
        _, cue, update = read_envelope(env.SerializeToString())
        upd = cls(Path(path), env, cue, update, {}, base)
        upd.meta = {"format": FORMAT, "channel": channel, "proposal": proposal,
                    "base_config_block": base_block, "summary": upd.summary(),
                    "requires": [show(r.policy) for r in required_policies(base, update)],
                    "base_config": base64.b64encode(base.SerializeToString()).decode()}
        upd.save()
        return upd

    def save(self) -> None:
        """The description first, then the signed bytes, each through a temporary file renamed into place: a
        command cut short leaves the update as it was or as it is now, never a description cut in the middle
        (the signatures collected so far could not be loaded again)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        side = self.sidecar(self.path)
        write_atomically(side, (json.dumps(self.meta, indent=2) + "\n").encode())
        write_atomically(self.path, self.envelope.SerializeToString())

    @property
    def channel(self) -> str:
        return self.update.channel_id

    def summary(self, config: configtx_pb2.Config | None = None) -> list[str]:
        """What the update changes, recomputed from its signed bytes."""
        base = config or self.base
        return summarize(base, apply_update(base, self.update))

    def add_signature(self, sig: configtx_pb2.ConfigSignature) -> None:
        self.cue.signatures.append(sig)
        self.envelope = with_update_envelope(self.envelope, self.cue)
        self.save()


def assess(upd: UpdateFile, config: configtx_pb2.Config | None = None,
           extra: list[Signer] = ()) -> dict:
    """Signatures, the policies the change needs and whether they are met, against
    ``config`` (default: the base config the update was computed from)."""
    config = config or upd.base
    problems = check_update(config, upd.update)
    sigs = mark_duplicates(signers(config, upd.cue) + list(extra))
    evaluations = [evaluate(config, r.policy, sigs) for r in required_policies(config, upd.update)]
    try:
        summary = upd.summary(config)
    except ConfigError as e:
        summary = [f"(cannot apply the update to this configuration: {e})"]
        problems.append(str(e))
    return {"update": str(upd.path), "channel": upd.channel,
            "proposal": upd.meta.get("proposal"),
            "base_config_block": upd.meta.get("base_config_block"),
            "summary": summary,
            "signatures": [s.as_dict() for s in sigs],
            "policies": [e.as_dict() for e in evaluations],
            "problems": problems,
            "satisfied": not problems and bool(evaluations) and all(e.satisfied
                                                                   for e in evaluations),
            "_evaluations": evaluations}


def format_assessment(a: dict) -> list[str]:
    lines = [f"Update {a['update']} for channel '{a['channel']}' "
             f"(computed against config block {a['base_config_block']})", "Changes:"]
    lines += [f"  {s}" for s in a["summary"]]
    lines.append(f"Signatures ({len(a['signatures'])}):")
    for s in a["signatures"]:
        flags = ["admin" if s["admin"] else "NOT an admin"]
        if not s["signature_valid"]:
            flags.append("INVALID signature")
        if s["duplicate"]:
            flags.append("duplicate, counts once")
        if s["problem"]:
            flags.append(s["problem"])
        if s["note"]:
            flags.append(s["note"])
        lines.append(f"  {s['msp_id']:<14} {s['subject']}  [{', '.join(flags)}]")
    if not a["signatures"]:
        lines.append("  (none yet)")
    lines.append("Policies the change needs:")
    for e in a["_evaluations"]:
        lines += [f"  {line}" for line in e.lines()]
    for p in a["problems"]:
        lines.append(f"Problem: {p}")
    lines.append("Ready to submit." if a["satisfied"] else "Not ready to submit.")
    return [printable(line) for line in lines]


# ----------------------------------------------------------------------------- sign

def sign(upd: UpdateFile, msp_id: str, msp_dir: Path, log=print) -> Signer:
    """Add ``msp_id``'s signature made with the identity in ``msp_dir`` (offline)."""
    try:
        identity, key = load_identity(msp_dir, msp_id)
    except (MSPError, OSError, ValueError) as e:
        raise AdminError(f"cannot sign as {msp_id}: {e}") from e
    cert_pem = identity.certificate_pem
    me = signer_for_identity(upd.base, msp_id, cert_pem)
    if not me.cert_valid:   # e.g. another organisation's admin: a signature that could never count
        raise AdminError(f"cannot sign as {msp_id}: the identity in {msp_dir} ({me.subject}) is not a valid "
                         f"identity of {msp_id} in the channel configuration ({me.problem}); sign with "
                         f"{msp_id}'s own admin. The update is unchanged")
    sig = sign_update(upd.cue, msp_id, cert_pem, key)
    # a signature that does not verify is no signature of this identity's (a certificate is public: anyone may
    # attach it to bytes of their own); the orderer, too, skips it and counts a later valid one
    already = any(s.key == me.key and s.signature_valid for s in signers(upd.base, upd.cue))
    if already:
        log(f"{msp_id}: this identity has signed already; the update is unchanged")
        return me
    upd.add_signature(sig)
    log(f"Signed by {msp_id} ({me.subject})")
    if not me.is_admin:
        log(f"Note: in the channel config this identity is not an admin of {msp_id} "
            f"({me.problem or 'no admin role'}): its signature does not count for Admins policies")
    return me
