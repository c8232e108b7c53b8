"""How a secret is kept at rest: sealed under a key kept outside the database, or shown once
and never kept (docs/secrets.md has the whole map).

**Sealed** (``Keyring.seal`` / ``Keyring.open``): AES-256-GCM, a fresh 96-bit nonce per seal,
the key id and a context (what the secret is for, and whose: ``payment_channel.secret:17``)
bound in as associated data, so a sealed value copied to another row or another purpose does
not open. A sealed value is text, ``cv1:<key id>:<base64url(nonce || ciphertext || tag)>``:
the key id names the key that sealed it, so keys rotate without a flag day. A keyring holds
every key that may still be needed to open, and one current key that every new seal uses;
``needs_reseal`` says which values a rotation must seal again.

Where the keys come from (the ID-hash key's HKDF subkey ``h1``, plus a keyring file for
rotation) is ``keys.py``'s business; this module only does the cryptography.

**Shown once** (``SHOWN_ONCE``): a marker for a response field that carries a secret the
server never keeps (an API token, a channel secret at creation). Stored answers for
Idempotency-Key replays keep it as null (``api.idempotency``); the schema marks it with
``x-shown-once``.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from civicvoucher.errors import CivicVoucherError
from civicvoucher.i18n import N_, msg

VERSION = "cv1"
KEY_ID = re.compile(r"^[a-z0-9]{1,16}$")
DERIVED_ID = "h1"  # the subkey of the ID-hash key (keys.py); always in a bound keyring
_NONCE = 12


class SealedSecretError(CivicVoucherError):
    """A sealed value cannot be opened: a deployment fault (a process without the key that
    sealed it, or a value changed in the database), never the caller's mistake."""

    code = "sealed_secret_unreadable"
    http_status = 500


class ShownOnce:
    """Annotated metadata: this response field carries a secret that is shown once, never
    stored (``Annotated[str | None, SHOWN_ONCE, Field(...)]``)."""

    def __repr__(self) -> str:
        return "SHOWN_ONCE"

    def __get_pydantic_json_schema__(self, core_schema, handler):
        """pydantic's hook (duck-typed: the core imports no pydantic): the OpenAPI schema
        says ``x-shown-once: true`` on the field."""
        schema = handler(core_schema)
        schema["x-shown-once"] = True
        return schema


SHOWN_ONCE = ShownOnce()


def derive_key(secret_key: bytes, label: str) -> bytes:
    """A 256-bit subkey of ``secret_key`` for one purpose (HKDF-SHA256, the label as info)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"civicvoucher",
                info=f"civicvoucher {label}".encode()).derive(secret_key)


def key_id_of(sealed: str) -> str:
    """The id of the key that sealed ``sealed`` (SealedSecretError if it is not one)."""
    return _split(sealed)[1]


def _split(sealed: str) -> tuple[str, str, str]:
    parts = sealed.split(":")
    if len(parts) != 3 or parts[0] != VERSION or not KEY_ID.fullmatch(parts[1]):
        raise SealedSecretError(N_("not a sealed value (cv1:<key id>:<data>)"),
                                code="sealed_secret_unreadable")
    return parts[0], parts[1], parts[2]


class Keyring:
    """Keys by id, and the current one. Immutable; ``AESGCM`` objects are built once."""

    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError(f"current key {current!r} is not in the keyring")
        for kid, key in keys.items():
            if not KEY_ID.fullmatch(kid) or len(key) != 32:
                raise ValueError(f"key {kid!r}: ids are 1-16 of a-z 0-9, keys 32 bytes")
        self._keys = dict(keys)
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self.current = current
        self._decoy: str | None = None
        self._decoy_lock = threading.Lock()

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    @classmethod
    def ephemeral(cls) -> Keyring:
        """A key that lives only in this process's memory (see ``db.Database.keyring``)."""
        kid = "e" + secrets.token_hex(4)
        return cls({kid: AESGCM.generate_key(256)}, kid)

    def with_readable(self, other: Keyring) -> Keyring:
        """This keyring, also able to open what ``other``'s keys sealed (ours win a clash)."""
        merged = {**other._keys, **self._keys}
        return Keyring(merged, self.current)

    @staticmethod
    def _aad(kid: str, context: str) -> bytes:
        return f"{VERSION}:{kid}:{context}".encode()

    def seal(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(_NONCE)
        ct = self._aead[self.current].encrypt(nonce, plaintext.encode(),
                                              self._aad(self.current, context))
        body = base64.urlsafe_b64encode(nonce + ct).rstrip(b"=").decode()
        return f"{VERSION}:{self.current}:{body}"

    def open(self, sealed: str, *, context: str) -> str:
        _, kid, body = _split(sealed)
        aead = self._aead.get(kid)
        if aead is None:
            raise SealedSecretError(
                msg("the key {kid} that sealed this secret is not in this process's keyring"
                    " ({keys}): give every process the same sealing-keys file (docs/secrets.md)",
                    kid=kid, keys=", ".join(self._keys)), code="sealing_key_unknown", key_id=kid)
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], self._aad(kid, context)).decode()
        except (InvalidTag, ValueError):
            raise SealedSecretError(
                msg("a secret sealed under key {kid} does not open: changed in the database, or"
                    " copied from another row", kid=kid),
                code="sealed_secret_unreadable", key_id=kid) from None

    def needs_reseal(self, sealed: str) -> bool:
        return key_id_of(sealed) != self.current

    def open_decoy(self) -> str:
        """Open a value sealed under the current key whose plaintext nobody knows: what a
        check does for a row that does not exist, so that both cost the same."""
        if self._decoy is None:
            with self._decoy_lock:
                if self._decoy is None:
                    self._decoy = self.seal(secrets.token_hex(32), context="decoy")
        return self.open(self._decoy, context="decoy")


__all__ = ["DERIVED_ID", "SHOWN_ONCE", "Keyring", "SealedSecretError", "ShownOnce",
           "derive_key", "key_id_of"]
