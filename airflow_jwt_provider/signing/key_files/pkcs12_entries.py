"""Reach every private-key entry of a PKCS#12 file by its alias (friendlyName).

``cryptography``'s PKCS#12 loader returns one key only, but a keystore made with
``keytool -genkeypair`` twice holds two, and the connection picks one by ``key_alias``.
This module walks the PFX structure (RFC 7292) just far enough to find the key bags and
their friendly names; decryption of each key (PBES2 or PKCS#12 PBE) and the integrity
check of the whole file stay with ``cryptography``. Only DER with definite lengths is
read, which is what keytool, OpenSSL and ``cryptography`` write.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

# DER-encoded OID bodies (without tag and length).
_OID_DATA = bytes.fromhex("2a864886f70d010701")  # 1.2.840.113549.1.7.1
_OID_KEY_BAG = bytes.fromhex("2a864886f70d010c0a0101")  # 1.2.840.113549.1.12.10.1.1
_OID_SHROUDED_KEY_BAG = bytes.fromhex("2a864886f70d010c0a0102")  # 1.2.840.113549.1.12.10.1.2
_OID_FRIENDLY_NAME = bytes.fromhex("2a864886f70d010914")  # 1.2.840.113549.1.9.20

_SEQUENCE, _SET, _OCTET_STRING, _OID, _CONTEXT_0 = 0x30, 0x31, 0x04, 0x06, 0xA0
_BMP_STRING = 0x1E


class PfxStructureError(ValueError):
    """The bytes are not the DER of a PFX this module can walk."""


@dataclass(frozen=True)
class KeyBag:
    """One private-key entry: its alias and its PKCS#8 DER (encrypted when ``encrypted``)."""

    alias: str | None
    der: bytes = field(repr=False)
    encrypted: bool


def _read_tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """Return (tag, value, next offset) of the DER element at ``offset``."""
    if offset + 2 > len(data):
        raise PfxStructureError("truncated DER element")
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length == 0x80:
        raise PfxStructureError("indefinite-length (BER) encoding is not supported")
    if length & 0x80:
        count = length & 0x7F
        if count > 4 or offset + count > len(data):
            raise PfxStructureError("bad DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise PfxStructureError("truncated DER element")
    return tag, data[offset:end], end


def _children(data: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset < len(data):
        tag, value, offset = _read_tlv(data, offset)
        yield tag, value


def _expect(tag: int, value: bytes, wanted: int) -> bytes:
    if tag != wanted:
        raise PfxStructureError(f"expected DER tag {wanted:#x}, found {tag:#x}")
    return value


def _data_content(content_info: bytes) -> bytes | None:
    """The octets of a ContentInfo of type ``data``; ``None`` for other types (encryptedData)."""
    items = list(_children(content_info))
    if len(items) < 2 or _expect(*items[0], _OID) != _OID_DATA:
        return None
    explicit = _expect(*items[1], _CONTEXT_0)
    tag, octets = next(_children(explicit))
    return _expect(tag, octets, _OCTET_STRING)


def _friendly_name(attributes: bytes) -> str | None:
    for tag, attribute in _children(attributes):
        _expect(tag, attribute, _SEQUENCE)
        parts = list(_children(attribute))
        if len(parts) == 2 and parts[0] == (_OID, _OID_FRIENDLY_NAME):
            for value_tag, value in _children(_expect(*parts[1], _SET)):
                if value_tag == _BMP_STRING:
                    return value.decode("utf-16-be")
    return None


def iter_key_bags(pfx: bytes) -> Iterator[KeyBag]:
    """Yield the private-key bags of ``pfx`` in file order.

    Key bags inside an ``encryptedData`` content (rare: keytool and OpenSSL shroud each
    key instead) are not reached; the caller then falls back to ``cryptography``'s loader.
    """
    tag, pfx_body, _ = _read_tlv(pfx, 0)
    _, auth_safe = list(_children(_expect(tag, pfx_body, _SEQUENCE)))[:2]
    auth_safe_octets = _data_content(_expect(*auth_safe, _SEQUENCE))
    if auth_safe_octets is None:
        raise PfxStructureError("public-key integrity mode is not supported")
    _, safe_list, _ = _read_tlv(auth_safe_octets, 0)
    for ci_tag, content_info in _children(safe_list):
        safe_contents = _data_content(_expect(ci_tag, content_info, _SEQUENCE))
        if safe_contents is None:
            continue
        _, bags, _ = _read_tlv(safe_contents, 0)
        for bag_tag, bag in _children(bags):
            parts = list(_children(_expect(bag_tag, bag, _SEQUENCE)))
            bag_id = _expect(*parts[0], _OID)
            if bag_id not in (_OID_KEY_BAG, _OID_SHROUDED_KEY_BAG):
                continue
            value_tag, value, _ = _read_tlv(_expect(*parts[1], _CONTEXT_0), 0)
            alias = _friendly_name(_expect(*parts[2], _SET)) if len(parts) > 2 else None
            der = bytes([value_tag]) + _der_length(len(value)) + value
            yield KeyBag(alias=alias, der=der, encrypted=bag_id == _OID_SHROUDED_KEY_BAG)


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body
