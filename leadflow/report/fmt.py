"""Number formatting shared by the terminal and HTML reports."""
from __future__ import annotations

DASH = "–"
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def money(value: float | None, currency: str = "USD", *, cents: bool = False) -> str:
    if value is None:
        return DASH
    sym = _SYMBOLS.get(currency)
    sign = "-" if value < 0 else ""
    body = f"{abs(value):,.2f}" if cents else f"{abs(value):,.0f}"
    return f"{sign}{sym}{body}" if sym else f"{sign}{body} {currency}"


def compact_money(value: float | None, currency: str = "USD") -> str:
    """$1.2k, $34k, $1.5M: for chart labels."""
    if value is None:
        return DASH
    sym = _SYMBOLS.get(currency, "")
    a = abs(value)
    sign = "-" if value < 0 else ""
    if a >= 1e6:
        body = f"{a / 1e6:.1f}M"
    elif a >= 1e4:
        body = f"{a / 1e3:.0f}k"
    elif a >= 1e3:
        body = f"{a / 1e3:.1f}k"
    else:
        body = f"{a:.0f}"
    return f"{sign}{sym}{body}" if sym else f"{sign}{body} {currency}"


def pct(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value * 100:.{digits}f}%"


def ratio(value: float | None, digits: int = 2) -> str:
    """ROMI as a multiple: 0.35 -> +35%."""
    return DASH if value is None else f"{value * 100:+.0f}%"


def seconds(value: float | None) -> str:
    if value is None:
        return DASH
    if value < 60:
        return f"{value:.0f} s"
    if value < 3600:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return DASH
    return f"{value:,.{digits}f}"


def score(value: float | None) -> str:
    """NPS: -100..100."""
    return DASH if value is None else f"{value:+.0f}"
