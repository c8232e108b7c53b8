"""Identifiers: time-ordered ids and unguessable voucher codes.

A voucher code is 130 bits from ``secrets`` in base32 (26 characters, grouped by five when
printed), never derived from personal data. Codes are looked up, not verified, so a
guessed code only works if it was issued; at 2^-130 per guess that is hopeless.
"""

from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MAX_ROW_ID = 2**31 - 1  # an integer primary key on PostgreSQL


def as_id(text: object, *, max_value: int = MAX_ROW_ID) -> int | None:
    """``text`` as a row id if it is one: ASCII digits (``str.isdigit`` also takes '²³' and
    '١٢٣', which ``int`` then refuses or reads as another number), 1 to ``max_value``.
    Anything else is None, so a lookup by id answers "not found" instead of failing."""
    s = str(text).strip()
    if not s or len(s) > 19 or not (s.isascii() and s.isdigit()):
        return None
    n = int(s)
    return n if 1 <= n <= max_value else None


def _b32(n: int, length: int) -> str:
    out = []
    for _ in range(length):
        n, r = divmod(n, 32)
        out.append(_CROCKFORD[r])
    return "".join(reversed(out))


def new_id() -> str:
    """A 26-character id: 48 bits of milliseconds then 80 random bits (ULID layout)."""
    ms = int(time.time() * 1000)
    return _b32((ms << 80) | secrets.randbits(80), 26)


_B32 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_BYTE_TO_B32 = bytes(_B32[b % 32] for b in range(256))  # 256 = 8 x 32: still uniform
CODE_LENGTH = 26  # x 5 bits = 130 bits of randomness


def voucher_codes(n: int) -> list[str]:
    """``n`` codes of 26 base32 characters (RFC 4648 alphabet), 130 random bits each."""
    raw = secrets.token_bytes(CODE_LENGTH * n).translate(_BYTE_TO_B32).decode("ascii")
    return [raw[i : i + CODE_LENGTH] for i in range(0, len(raw), CODE_LENGTH)]


def voucher_code() -> str:
    return voucher_codes(1)[0]


_TYPO = str.maketrans({"0": "O", "1": "I", "8": "B"})


def normalise_code(text: str) -> str:
    """Accept codes as people type them: lower case, dashes, spaces; 0/1/8 read as O/I/B."""
    return text.strip().upper().replace("-", "").replace(" ", "").translate(_TYPO)


def format_code(code: str) -> str:
    """XXXXXX-XXXXX-... groups of five for printing on paper."""
    return "-".join(code[i : i + 5] for i in range(0, len(code), 5))
