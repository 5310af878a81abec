"""Where a chaincode event listener got to: (block number, transaction id).

A checkpoint (block N, tx T) means "every event up to and including those of
transaction T in block N has been handled": listening resumes in block N after T.
A checkpoint on a whole block N is stored as (N + 1, "").
"""
from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from ipledger.network import files


@dataclass(frozen=True)
class Checkpoint:
    block_number: int = 0
    tx_id: str = ""

    @property
    def empty(self) -> bool:
        return self.block_number == 0 and not self.tx_id


class FileCheckpointer:
    """A checkpoint kept in a JSON file (mode 0600), replaced atomically on every update
    (:func:`ipledger.network.files.write_atomically`): a crash leaves either the old or the new
    checkpoint, never a torn one. One process saves at a time (the feed lock's holder): the
    temporary file beside the checkpoint is one.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._state = self._load()

    def _load(self) -> Checkpoint:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return Checkpoint()
        try:
            raw = json.loads(text)
            block, tx_id = raw["blockNumber"], raw["transactionId"]
            if not isinstance(block, int) or block < 0 or not isinstance(tx_id, str):
                raise ValueError("bad field types")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"checkpoint file {self.path} is corrupt: {exc}") from exc
        return Checkpoint(block, tx_id)

    def reload(self) -> Checkpoint:
        """Read the file again — what another process saved since this one was made (the feed listener of
        another gateway worker that led before this one) — and remove the temporary files of saves a crash
        interrupted (``.<name>.tmp``, which the next save would remove too, and the ``.<name>.<random>.tmp``
        of earlier versions). Only for the one process that writes from now on (the feed lock's holder)."""
        with self._lock:
            for leftover in (*self.path.parent.glob(f".{self.path.name}.*.tmp"),
                             self.path.with_name(f".{self.path.name}.tmp")):
                with contextlib.suppress(OSError):
                    leftover.unlink()
            self._state = self._load()
            return self._state

    @property
    def checkpoint(self) -> Checkpoint:
        return self._state

    @property
    def block_number(self) -> int:
        return self._state.block_number

    @property
    def tx_id(self) -> str:
        return self._state.tx_id

    @property
    def empty(self) -> bool:
        return self._state.empty

    def checkpoint_block(self, block_number: int) -> None:
        """Block ``block_number`` is fully handled: resume at the next block."""
        self.checkpoint_transaction(block_number + 1, "")

    def checkpoint_transaction(self, block_number: int, tx_id: str) -> None:
        self._save(Checkpoint(block_number, tx_id))

    def checkpoint_event(self, event) -> None:
        """The events of ``event``'s transaction are handled."""
        self.checkpoint_transaction(event.block_number, event.tx_id)

    def _save(self, state: Checkpoint) -> None:
        data = json.dumps({"blockNumber": state.block_number, "transactionId": state.tx_id}).encode()
        with self._lock:
            files.write_atomically(self.path, data, 0o600)
            self._state = state
