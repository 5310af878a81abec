"""A small contract API on top of the stub.

Usage::

    from ipledger.chaincode.shim.contract_api import Contract, transaction, ChaincodeError

    class QuantityExceedsBalance(ChaincodeError):
        code = "QuantityExceedsBalance"

    class IpLedger(Contract):
        name = "ipledger"

        @transaction
        def ExitGoods(self, stub, event):
            ...
            raise QuantityExceedsBalance("not enough left", balance=3, requested=5)

        @transaction(submit=False)
        def GetBalances(self, stub, authorisation_id):
            return {"balance": 3}

Dispatch rules (``Contract.invoke``):

* ``function`` is the transaction name, optionally prefixed ``ContractName:``
  (the prefix must then equal :attr:`Contract.name`).
* every argument is a string holding JSON; it is decoded and passed
  positionally: ``method(self, stub, *decoded_args)``. A non-JSON argument is
  refused with code ``InvalidArguments``; so is one naming a member twice in an
  object, and a wrong number of arguments.
* the return value is JSON encoded (compact, ``sort_keys``) as the payload with
  status 200; ``None`` gives an empty payload.
* a :class:`ChaincodeError` gives status 500 and the message
  ``{"code": ..., "message": ..., "details": {...}}`` (JSON); an unknown
  function gives code ``UnknownFunction``; any other exception code
  ``InternalError`` with the exception text (never a traceback).
* ``org.hyperledger.fabric:GetMetadata`` (alias ``GetMetadata``) is a built-in
  evaluate transaction describing the contract's transactions as JSON.

``invoke`` never raises: it always returns ``(status, message, payload)``.
"""
from __future__ import annotations

import inspect
import json
import logging
import math
import re
import traceback
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

__all__ = [
    "ChaincodeError",
    "Contract",
    "transaction",
    "TransactionInfo",
    "METADATA_FUNCTION",
    "encode_json",
    "error_message",
]

_log = logging.getLogger(__name__)

OK = 200
ERROR = 500
METADATA_FUNCTION = "org.hyperledger.fabric:GetMetadata"
_METADATA_ALIASES = frozenset({METADATA_FUNCTION, "GetMetadata"})
_TX_ATTR = "__ipledger_transaction__"


class ChaincodeError(Exception):
    """A business-rule error with a stable, machine-readable ``code``.

    Subclasses override ``code``; keyword arguments become ``details`` and must
    be JSON serialisable (anything that is not is rendered with ``str``).
    """

    code: str = "ChaincodeError"
    # a refusal the peer's operator must see in the chaincode's log too, not only the caller (a damaged ledger)
    logged: bool = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = str(message)
        self.details = dict(details)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "details": self.details}

    def to_json(self) -> str:
        return encode_json(self.to_dict(), lenient=True)

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class _UnknownFunction(ChaincodeError):
    code = "UnknownFunction"


class _InvalidArguments(ChaincodeError):
    code = "InvalidArguments"


class _InternalError(ChaincodeError):
    code = "InternalError"


@dataclass(frozen=True)
class TransactionInfo:
    name: str  # the name callers use
    attr: str  # the Python attribute on the Contract class
    submit: bool
    doc: str
    parameters: tuple[str, ...]


def transaction(fn: Callable | None = None, *, submit: bool = True, name: str | None = None):
    """Mark a Contract method as a transaction.

    ``@transaction`` → submit transaction; ``@transaction(submit=False)`` →
    evaluate-only (a marking in the metadata; the peer cannot enforce it);
    ``name=`` overrides the externally visible name.
    """

    def mark(f: Callable) -> Callable:
        if not callable(f):
            raise TypeError("@transaction decorates a method")
        setattr(f, _TX_ATTR, {"submit": bool(submit), "name": name})
        return f

    if fn is not None:
        return mark(fn)
    return mark


def encode_json(value: Any, *, lenient: bool = False) -> str:
    """Compact, key-sorted JSON (the payload encoding of the contract API).

    ``lenient`` (error messages): a value JSON cannot hold is written as its ``str``, and a lone surrogate — text
    a client can send as a JSON escape and an error may echo, but which has no UTF-8 encoding, so the message
    could not be sent to the peer — as its JSON escape (``\\ud800``: the same value once decoded)."""
    text = json.dumps(
        value,
        separators=(",", ":"),
        sort_keys=True,
        ensure_ascii=False,
        allow_nan=False,
        default=str if lenient else None,
    )
    if lenient:
        # raw surrogates only occur inside the document's strings, where their escape means the same
        text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def error_message(code: str, message: str, details: dict | None = None) -> str:
    return encode_json({"code": code, "message": message, "details": details or {}}, lenient=True)


class Contract:
    """Base class of a contract. Subclass, set ``name``, decorate methods."""

    name: str = ""

    # -- introspection ---------------------------------------------------------
    @classmethod
    def transactions(cls) -> dict[str, TransactionInfo]:
        cached = cls.__dict__.get("_ipledger_tx_table")
        if cached is not None:
            return cached
        table: dict[str, TransactionInfo] = {}
        seen: set[str] = set()
        for klass in cls.__mro__:
            for attr, member in vars(klass).items():
                if attr in seen:
                    continue
                seen.add(attr)
                fn = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                mark = getattr(fn, _TX_ATTR, None)
                if mark is None:
                    continue
                ext = mark["name"] or attr
                if ext in table:
                    raise TypeError(f"duplicate transaction name {ext!r} in {cls.__name__}")
                if ext in _METADATA_ALIASES:
                    raise TypeError(f"transaction name {ext!r} is reserved")
                params = tuple(inspect.signature(fn).parameters)[2:]  # drop self, stub
                table[ext] = TransactionInfo(
                    name=ext,
                    attr=attr,
                    submit=mark["submit"],
                    doc=inspect.cleandoc(fn.__doc__ or ""),
                    parameters=params,
                )
        setattr(cls, "_ipledger_tx_table", table)
        return table

    def metadata(self) -> dict:
        """The description returned by ``org.hyperledger.fabric:GetMetadata``."""
        name = self.name or type(self).__name__
        txs = []
        for info in sorted(self.transactions().values(), key=lambda i: i.name):
            txs.append(
                {
                    "name": info.name,
                    "tag": ["submit" if info.submit else "evaluate"],
                    "submit": info.submit,
                    "description": info.doc,
                    "parameters": [{"name": p} for p in info.parameters],
                }
            )
        return {
            "$schema": "https://hyperledger.github.io/fabric-chaincode-node/main/api/contract-schema.json",
            "info": {"title": name, "version": "1"},
            "contracts": {
                name: {
                    "name": name,
                    "info": {"title": name, "description": inspect.cleandoc(type(self).__doc__ or "")},
                    "transactions": txs,
                }
            },
            "default": name,
        }

    # -- dispatch ----------------------------------------------------------------
    def _resolve(self, function: str) -> TransactionInfo | None:
        """The transaction for ``function``; None means GetMetadata."""
        if function in _METADATA_ALIASES:
            return None
        fn_name = function
        if ":" in function:
            prefix, fn_name = function.split(":", 1)
            if prefix != (self.name or type(self).__name__) and prefix != type(self).__name__:
                raise _UnknownFunction(
                    f"unknown contract {prefix!r} (this chaincode serves {self.name!r})",
                    function=function,
                )
            if fn_name in _METADATA_ALIASES:
                return None
        info = self.transactions().get(fn_name)
        if info is None:
            raise _UnknownFunction(f"unknown function {fn_name!r}", function=function)
        return info

    def invoke(self, stub: Any, function: str, args: list) -> tuple[int, str, bytes]:
        """Run one transaction; returns ``(status, message, payload)``. Never raises."""
        if isinstance(function, (bytes, bytearray)):
            try:
                function = bytes(function).decode("utf-8")
            except UnicodeDecodeError:
                return ERROR, error_message("UnknownFunction", "function name is not UTF-8"), b""
        try:
            info = self._resolve(function)
            if info is None:
                return OK, "", encode_json(self.metadata()).encode("utf-8")
            decoded = [_decode_arg(i, a) for i, a in enumerate(args)]
            method = getattr(self, info.attr)
            signatures = self.__dict__.setdefault("_ipledger_signatures", {})  # inspect.signature is slow
            signature = signatures.get(info.attr)
            if signature is None:
                signature = signatures[info.attr] = inspect.signature(method)
            try:
                signature.bind(stub, *decoded)
            except TypeError:
                raise _InvalidArguments(
                    f"{info.name} expects {len(info.parameters)} argument(s) "
                    f"({', '.join(info.parameters)}), got {len(decoded)}",
                    expected=list(info.parameters),
                    got=len(decoded),
                ) from None
            result = method(stub, *decoded)
            if result is None:
                return OK, "", b""
            try:
                payload = encode_json(result).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise _InternalError(
                    f"{info.name} returned a value that is not JSON serialisable: {exc}"
                ) from None
            return OK, "", payload
        except ChaincodeError as exc:
            if exc.logged:
                _log.warning("transaction %r refused: %s: %s", function, exc.code, exc.message)
            return ERROR, exc.to_json(), b""
        except Exception as exc:  # noqa: BLE001 - the contract boundary
            # Log frames and type only: the exception text may carry data.
            _log.warning(
                "transaction %r raised %s\n%s",
                function,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            text = str(exc) or type(exc).__name__
            return ERROR, error_message("InternalError", text, {"type": type(exc).__name__}), b""


class MemberNamedTwice(Exception):
    """A JSON object naming one member twice. ``json.loads`` keeps the last value; other readers keep the first or
    refuse — the gateway refuses such a body — so the text would mean different things to different readers (an
    auditor reading the block's arguments, the sender's own check)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def unique_members(pairs: list) -> dict:
    """``object_pairs_hook`` of every JSON the contract reads from a client: the object, or
    :class:`MemberNamedTwice`."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set = set()
        for name, _value in pairs:
            if name in seen:
                raise MemberNamedTwice(name)
            seen.add(name)
    return obj


class _InexactNumber(Exception):
    """A JSON number the contract cannot take exactly: a fraction or exponent whose double-precision value is
    another number, an exponent of more than :data:`EXPONENT_DIGITS_MAX` digits, or an integer of more than
    :data:`INTEGER_DIGITS_MAX` digits (``why`` says which)."""

    def __init__(self, text: str, why: str = "more significant digits than the contract can take exactly (a 64-bit "
                                             "binary number, about 15 digits)"):
        super().__init__(text)
        self.text = text
        self.why = why


# the most digits a number's exponent may have: a float's exponents stay within ±400 or so, and Python's decimal
# numbers have limits that depend on the build (an exponent past 425,000,000 is refused on a 32-bit host only)
EXPONENT_DIGITS_MAX = 4


def _exact_float(text: str) -> float:
    """``parse_float`` of the arguments: the number as a float, refused (:class:`_InexactNumber`) when the float
    is not the number written — ``1.0000000000000001`` would otherwise be taken as 1, silently — or when its
    exponent has more than :data:`EXPONENT_DIGITS_MAX` digits (``0e1000000000``). Deterministic: the same text
    gives the same answer on every peer. Numbers beyond a float's range stay for the contract to refuse (it
    refuses non-finite numbers by name)."""
    _, _, exponent = text.lower().partition("e")
    if len(exponent.lstrip("+-")) > EXPONENT_DIGITS_MAX:
        raise _InexactNumber(text, f"an exponent of more than {EXPONENT_DIGITS_MAX} digits")
    value = float(text)
    if math.isfinite(value) and Decimal(repr(value)) != Decimal(text):
        raise _InexactNumber(text)
    return value


# the most digits an integer may have: far beyond any quantity the schemas take (10^15), and far below Python's
# limit on converting digits to an integer, which a peer's environment can change (PYTHONINTMAXSTRDIGITS): past
# it, one peer refused the argument as not JSON and another read it, and refused it by another rule
INTEGER_DIGITS_MAX = 30


def _bounded_int(text: str) -> int:
    """``parse_int`` of the arguments: the integer, refused (:class:`_InexactNumber`) beyond
    :data:`INTEGER_DIGITS_MAX` digits — the same refusal on every peer, whatever its Python's own limit."""
    if len(text.lstrip("-")) > INTEGER_DIGITS_MAX:
        raise _InexactNumber(text[:40], f"more than {INTEGER_DIGITS_MAX} digits")
    return int(text)


def _decode_arg(index: int, raw: Any) -> Any:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise _InvalidArguments(f"argument {index + 1} is not UTF-8 text", index=index + 1) from None
    if not isinstance(raw, str):
        raise _InvalidArguments(f"argument {index + 1} must be a string", index=index + 1)
    try:
        return json.loads(raw, parse_float=_exact_float, parse_int=_bounded_int, object_pairs_hook=unique_members)
    except MemberNamedTwice as exc:
        raise _InvalidArguments(
            f"argument {index + 1} names the member {exc.name[:40]!r} twice in one object", index=index + 1
        ) from None
    except _InexactNumber as exc:
        raise _InvalidArguments(
            f"argument {index + 1} holds the number {exc.text[:40]}, which has {exc.why}: send it with fewer "
            f"digits",
            index=index + 1,
        ) from None
    except ValueError:
        raise _InvalidArguments(
            f"argument {index + 1} is not valid JSON (strings must be quoted, e.g. '\"abc\"')",
            index=index + 1,
        ) from None
    except RecursionError:  # deeper than the interpreter's recursion limit: no argument the contract reads
        raise _InvalidArguments(f"argument {index + 1} is nested too deeply", index=index + 1) from None
