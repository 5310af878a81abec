"""ASN.1 DER, the little of it Fabric's formats need written or walked by hand.

- :func:`length`: a DER length (short form below 128, else 0x80 | number of bytes,
  then the bytes, big-endian);
- :func:`element`: one tag-length-value element; :func:`integer`: a non-negative
  INTEGER in minimal two's complement (Go's ``asn1.Marshal`` of a ``big.Int``);
- :func:`read_element`: where the content of the element at a position starts and ends.

Used by :mod:`.blocks` (the block header bytes that are hashed) and :mod:`.msp`
(a certificate's signature re-encoded with a low S).
"""
from __future__ import annotations


def length(n: int) -> bytes:
    """The DER encoding of a content length ``n``."""
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def element(tag: int, content: bytes) -> bytes:
    """The DER element ``tag`` holding ``content``."""
    return bytes([tag]) + length(len(content)) + content


def integer(n: int) -> bytes:
    """A non-negative INTEGER, minimal two's complement."""
    body = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big")
    while len(body) > 1 and body[0] == 0 and body[1] < 0x80:
        body = body[1:]
    return element(0x02, body)


def read_element(data: bytes, pos: int) -> tuple[int, int]:
    """(content start, content end = element end) of the DER element at ``pos``;
    ValueError if it is truncated or its length is not one this reader takes (at most 4 bytes)."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    n = data[pos + 1]
    start = pos + 2
    if n & 0x80:
        count = n & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise ValueError("bad DER length")
        n = int.from_bytes(data[start:start + count], "big")
        start += count
    end = start + n
    if end > len(data):
        raise ValueError("truncated DER")
    return start, end
