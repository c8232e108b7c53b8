"""Money is integer fen (分). Floats are refused at the door.

``Fen`` is a plain ``int`` alias so arithmetic stays cheap; ``fen()`` is the checked way in.
Formatting follows how Chinese officials read amounts: 8.7亿, 4,800万, ¥1,234.56.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from civicvoucher.i18n import msg

Fen = int

FEN_PER_YUAN = 100
YI = 100_000_000 * FEN_PER_YUAN  # 1亿 yuan in fen
WAN = 10_000 * FEN_PER_YUAN  # 1万 yuan in fen


def fen(value: object) -> Fen:
    """Return ``value`` as fen; accepts int only (bool and float are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"money must be integer fen, not {type(value).__name__}: {value!r}")
    return value


_YUAN_TEXT = re.compile(r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<dec>[0-9]+))?")
MAX_YUAN_DIGITS = 13  # up to 9,999,999,999,999 yuan: far above any program, far below overflow
_UNITS = {"万": 10_000, "亿": 100_000_000}  # 15万 = 150,000 yuan; 2亿 = 200,000,000 yuan
_FEN_DIGITS = {"万": 6, "亿": 10}  # at most this many decimals before the unit still give whole fen


def yuan_to_fen(text: str | int | Decimal) -> Fen:
    """Parse a yuan amount written by a person ('300', '12.5', '1,234.56', '¥300', '300元',
    '15万', '1.5万', '2亿', '1,500万元') into fen.

    Strict, because a typo must not become money: ASCII digits, optional thousands separators
    in groups of three, at most two decimals (a third, even a zero, is an error, not a
    rounding). A 万 (10,000) or 亿 (100,000,000) unit may follow the number; the result must
    still be whole fen ('1.234567万' is refused, not rounded). Refused with a reason: floats,
    bools, signs, exponents ('1e3'), NaN/Infinity, spaces inside the number, full-width
    digits, empty text, a unit without a number ('万'), two units ('1万亿').

    A refusal is a ``ValueError`` whose argument is a message (``civicvoucher.i18n.Msg``): its
    ``str`` is English, ``localize`` gives it in the reader's language.
    """
    if isinstance(text, (float, bool)):
        raise TypeError(f"money must not be a float or bool: {text!r}")
    if isinstance(text, int):
        return text * FEN_PER_YUAN
    if isinstance(text, Decimal):
        if not text.is_finite():
            raise ValueError(msg("not an amount of yuan: {text}", text=repr(text)))
        scaled = text * FEN_PER_YUAN
        if scaled != scaled.to_integral_value():
            raise ValueError(msg("more than two decimals (fen) in {text}", text=str(text)))
        return int(scaled)
    if not isinstance(text, str):
        raise TypeError(f"not an amount of yuan: {text!r}")
    body = text.strip()
    body = body.removeprefix("¥").removeprefix("￥").removesuffix("元").strip()
    unit = body[-1:] if body[-1:] in _UNITS else ""
    if unit:
        body = body[:-1]
    m = _YUAN_TEXT.fullmatch(body)
    if m is None:
        if body[:1] in ("-", "+", "−"):
            reason = msg("no sign: amounts are positive yuan")
        elif "e" in body.lower() or body.lower() in ("nan", "inf", "infinity"):
            reason = msg("digits only (no exponent, NaN or infinity)")
        elif "," in body:
            reason = msg("thousands are separated by commas in groups of three: 1,234.56")
        elif unit or body[-1:] in _UNITS:
            reason = msg("a number before 万 or 亿, once: 15万, 1.5万, 2亿")
        else:
            reason = msg("write it like 300, 12.50, 1,234.56 or 15万")
        raise ValueError(msg("not an amount of yuan: {text} ({reason})", text=repr(text),
                             reason=reason))
    whole, dec = m["int"].replace(",", ""), m["dec"] or ""
    if len(dec) > (_FEN_DIGITS[unit] if unit else 2):
        if unit:
            raise ValueError(msg("{text} is finer than a fen (¥0.01): use fewer decimals",
                                 text=repr(text)))
        raise ValueError(msg("more than two decimals (fen) in {text}", text=repr(text)))
    if len(whole.lstrip("0")) > MAX_YUAN_DIGITS:
        raise ValueError(msg("too large an amount: {text}", text=repr(text)))
    if unit:
        scaled = Decimal(f"{whole}.{dec or 0}") * _UNITS[unit]
        whole, dec = str(int(scaled)), f"{scaled:f}".partition(".")[2].rstrip("0")
    if len(whole.lstrip("0")) > MAX_YUAN_DIGITS:
        raise ValueError(msg("too large an amount: {text}", text=repr(text)))
    return int(whole) * FEN_PER_YUAN + int(dec.ljust(2, "0"))


def format_yuan(amount: Fen) -> str:
    """¥1,234.56 (exact, for receipts and ledgers)."""
    fen(amount)
    sign = "-" if amount < 0 else ""
    yuan, rest = divmod(abs(amount), FEN_PER_YUAN)
    return f"{sign}¥{yuan:,}.{rest:02d}"


def format_cn(amount: Fen, *, digits: int = 2) -> str:
    """Amounts the way officials read them: 8.7亿, 0.48亿, 4,800万, 3,000元.

    ≥ 1亿 → 亿 with up to ``digits`` decimals (trailing zeros dropped); ≥ 1万 → whole 万 with
    thousands separators; below that, yuan.
    """
    fen(amount)
    sign = "-" if amount < 0 else ""
    a = abs(amount)
    if a >= YI:
        q = (Decimal(a) / YI).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
        text = f"{q:f}".rstrip("0").rstrip(".")
        return f"{sign}{text}亿"
    if a >= WAN:
        q = (Decimal(a) / WAN).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return f"{sign}{int(q):,}万"
    q = (Decimal(a) / FEN_PER_YUAN).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    text = f"{q:,f}".rstrip("0").rstrip(".")
    return f"{sign}{text}元"


def allocate(total: Fen, weights: Sequence[int]) -> list[Fen]:
    """Split ``total`` by integer ``weights`` so the parts sum exactly to ``total``.

    Largest-remainder method; ties go to the earlier weight. Weights must be non-negative and
    not all zero.
    """
    fen(total)
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise ValueError("weights must be non-negative and not all zero")
    wsum = sum(weights)
    base = [total * w // wsum for w in weights]
    remainders = [(total * w % wsum, -i) for i, w in enumerate(weights)]
    short = total - sum(base)
    for _, neg_i in sorted(remainders, reverse=True)[:short]:
        base[-neg_i] += 1
    return base
