"""API keys: one org and one role per key, stored hashed in a 0600 JSON file.

A key reads ``ipk_<key id>_<secret>``: the key id (12 hex digits) finds the
record, the secret (32 random bytes, base64url) is checked against
``sha256(salt || secret)`` with a per-key random salt, in constant time. The
secret has 256 bits of entropy, so a fast hash is enough (slow hashes protect
guessable passwords); the plain key is printed once by
``ipledger gateway keys create`` and never stored.

The file (an organisation's gateway's ``<state>/<org name>/gateway/api-keys.json``)::

    {"version": 1, "keys": {"3f2a…": {"org": "OperatorMSP", "role": "clerk", "label": "ERP",
       "salt": "…", "hash": "…", "created_at": "…", "revoked_at": null}}}

Writers (the CLI) hold an exclusive lock and replace the file atomically
(:class:`ipledger.gateway.filestore.JsonFile`); the server re-reads it when it changes, so a
revocation takes effect at once without a restart.

Roles *(design)*: ``clerk`` submits events and reads; ``viewer`` only reads.
The org is the key's, never the request's: a key of one org cannot act as another.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from ipledger.gateway import moments
from ipledger.gateway.filestore import JsonFile, require_owner_only

log = logging.getLogger(__name__)

ROLES: dict[str, frozenset[str]] = {
    "clerk": frozenset({"submit", "read"}),
    "viewer": frozenset({"read"}),
}
PREFIX = "ipk"
_KEY = re.compile(r"^ipk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
FILE_VERSION = 1


class KeyStoreError(RuntimeError):
    """An API key cannot be made or the key file read as asked (not a key file, an unknown role or org, an
    expiry out of range)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, org (MSP id) and role."""
    key_id: str
    org: str
    role: str
    label: str = ""

    def may(self, permission: str) -> bool:
        return permission in ROLES.get(self.role, frozenset())


def _hash(salt: bytes, secret: str) -> str:
    return hashlib.sha256(salt + secret.encode("ascii")).hexdigest()


def _now(later: dt.timedelta = dt.timedelta()) -> str:
    return moments.now_text(later)


def _usable(record: dict | None) -> bool:
    """A key record that opens the door: there, never revoked (``revoked_at`` null: any other value, ``false``
    too, counts as revoked), not expired (an ``expires_at`` that is not a time of this file's form counts as
    expired): fail closed."""
    if not isinstance(record, dict) or record.get("revoked_at", "") is not None:
        return False
    expires = record.get("expires_at")
    if expires is None:
        return True
    return isinstance(expires, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", expires) is not None \
        and _now() < expires


def check_mode(path: Path) -> None:
    require_owner_only(path, "API key file", KeyStoreError)


_NEVER_READ = object()   # a worker's key store before its first read (a missing file is a state of its own)


class KeyStore:
    """The key file: create, list, revoke (CLI) and authenticate (server)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        # kept: a file deleted underneath is a lost one (its lock file says it was written), never "no keys"
        self._file = JsonFile(self.path, empty=lambda: {"version": FILE_VERSION, "keys": {}}, check=self._check_shape,
                              kept=True)
        self._lock = threading.Lock()
        self._signature: tuple | None | object = _NEVER_READ
        self._keys: dict[str, dict] = {}

    # -- reading ------------------------------------------------------------------------------------
    def _check_shape(self, data) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("keys"), dict) or \
                not all(isinstance(record, dict) for record in data["keys"].values()):
            raise KeyStoreError(f"{self.path} is not an ipledger API key file")

    def _read(self) -> dict:
        """The file's document (CorruptFileError, a ValueError, when it is not JSON)."""
        return self._file.read()

    def check(self) -> None:
        """Raise KeyStoreError when the file exists but is unsafe or not a key file, CorruptFileError when it is
        not JSON, MissingFileError when it was written before and is gone (checked at start-up)."""
        if self.path.exists():
            check_mode(self.path)
        self._read()   # a missing file written before (its lock file says so) is lost: MissingFileError

    def _current(self) -> dict[str, dict]:
        """The keys, re-read when the file changed (cheap: one stat per request)."""
        try:
            st = self.path.stat()
            signature = (st.st_ino, st.st_mtime_ns, st.st_size, stat.S_IMODE(st.st_mode))
        except FileNotFoundError:
            signature = None
        with self._lock:
            if signature != self._signature:
                try:
                    if signature is not None:
                        check_mode(self.path)
                    self._keys = self._read()["keys"]
                    self._signature = signature
                except (KeyStoreError, ValueError, OSError) as exc:
                    # keep serving the keys read before; a broken file must not open the door
                    log.error("API key file not reloaded: %s", exc)
            return self._keys

    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal of a valid, unrevoked key; None otherwise."""
        if not presented:
            return None
        m = _KEY.match(presented.strip())
        if not m:
            return None
        key_id, secret = m.groups()
        record = self._current().get(key_id)
        if not _usable(record):
            return None
        try:
            salt = bytes.fromhex(record["salt"])
        except (KeyError, ValueError):
            return None
        if not hmac.compare_digest(_hash(salt, secret), str(record.get("hash", ""))):
            return None
        return Principal(key_id=key_id, org=record["org"], role=record["role"], label=record.get("label", ""))

    def made_here(self, key_id: str | None) -> bool:
        """Whether this gateway's key file has ever held key ``key_id`` (revoked and expired keys too): a key
        it never made is most likely another organisation's, presented to the wrong gateway."""
        return (key_id or "") in self._current()

    def active(self, key_id: str | None) -> Principal | None:
        """The principal of key ``key_id`` while the key is valid (in the file, not revoked), from the keys
        re-read when the file changed. For what a key opened and that lasts — a dashboard session, a
        live-feed stream —, checked again on each request or poll: the secret was checked when the key was
        presented, the key's validity can end since."""
        record = self._current().get(key_id or "")
        if not _usable(record):
            return None
        return Principal(key_id=key_id, org=record["org"], role=record["role"], label=record.get("label") or "")

    def list(self) -> list[dict]:
        """Every key without its hash and salt."""
        out = []
        for key_id, rec in sorted(self._read()["keys"].items(), key=lambda kv: kv[1].get("created_at", "")):
            out.append({"key_id": key_id, **{k: rec.get(k) for k in ("org", "role", "label", "created_at",
                                                                      "expires_at", "revoked_at")}})
        return out

    # -- writing (CLI), under the file's exclusive lock ---------------------------------------------
    def create(self, org: str, role: str, label: str = "", expires_in_days: int | None = None) -> tuple[str, str]:
        """A new key for ``org`` with ``role``: (key id, the key itself — shown once). With ``expires_in_days``
        the key is refused from that many days on (as if revoked then); without, it lasts until revoked."""
        if expires_in_days is not None and not (isinstance(expires_in_days, int) and 0 < expires_in_days <= 36500):
            raise KeyStoreError(f"a key expires in 1 to 36500 days, not {expires_in_days!r}")
        if role not in ROLES:
            raise KeyStoreError(f"unknown role {role!r}; roles are: {', '.join(ROLES)}")
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,64}", org or ""):
            raise KeyStoreError(f"invalid org (MSP id) {org!r}")
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
        salt = secrets.token_bytes(16)
        with self._file.update() as data:
            key_id = secrets.token_hex(6)
            while key_id in data["keys"]:
                key_id = secrets.token_hex(6)
            data["version"] = FILE_VERSION
            data["keys"][key_id] = {"org": org, "role": role, "label": label, "salt": salt.hex(),
                                    "hash": _hash(salt, secret), "created_at": _now(), "revoked_at": None}
            if expires_in_days is not None:
                data["keys"][key_id]["expires_at"] = _now(dt.timedelta(days=expires_in_days))
        return key_id, f"{PREFIX}_{key_id}_{secret}"

    def revoke(self, key_id: str) -> bool:
        """Revoke a key (kept in the file, marked revoked). False if there is no such active key."""
        with self._file.update() as data:
            rec = data["keys"].get(key_id)
            if rec is None or rec.get("revoked_at"):
                return False
            rec["revoked_at"] = _now()
            return True


def key_id_of(presented: str | None) -> str | None:
    """The key id part of a presented key (safe to log), or None."""
    m = _KEY.match((presented or "").strip())
    return m.group(1) if m else None
