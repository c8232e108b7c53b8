"""Money is integer fen (分). Floats are refused at the door.

``Fen`` is a plain ``int`` alias so arithmetic stays cheap; ``fen()`` is the checked way in.
Formatting follows how Chinese officials read amounts: 8.7亿, 4,800万, ¥1,234.56.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

Fen = int

FEN_PER_YUAN = 100
YI = 100_000_000 * FEN_PER_YUAN  # 1亿 yuan in fen
WAN = 10_000 * FEN_PER_YUAN  # 1万 yuan in fen


def fen(value: object) -> Fen:
    """Return ``value`` as fen; accepts int only (bool and float are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"money must be integer fen, not {type(value).__name__}: {value!r}")
    return value


def yuan_to_fen(text: str | int | Decimal) -> Fen:
    """Parse a yuan amount written by a person ('300', '12.5', '1,234.56') into fen.

    Floats are refused: 0.1 + 0.2 is not money. More than two decimals is an error, not a rounding.
    """
    if isinstance(text, (float, bool)):
        raise TypeError(f"money must not be a float: {text!r}")
    if isinstance(text, int):
        return text * FEN_PER_YUAN
    try:
        d = Decimal(str(text).replace(",", "").replace("¥", "").replace("元", "").strip())
    except InvalidOperation:
        raise ValueError(f"not an amount of yuan: {text!r}") from None
    if not d.is_finite():
        raise ValueError(f"not an amount of yuan: {text!r}")
    scaled = d * FEN_PER_YUAN
    if scaled != scaled.to_integral_value():
        raise ValueError(f"more than two decimals (fen) in {text!r}")
    return int(scaled)


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
