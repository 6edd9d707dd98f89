"""Money fields (`cost`, `amount`, `revenue`) and `currency` (events.md, "Money").

A money value is a decimal number given as a JSON number or a numeric string.
JSON numbers arrive as float/int and are converted through `str()` so that
`412.1` becomes `Decimal("412.1")`, not the binary float expansion.
"""
import re
from decimal import Decimal
from typing import Annotated, Any, Mapping

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_MONEY",
    "Currency",
    "Money",
    "PositiveMoney",
    "convert",
    "parse_currency",
    "parse_money",
]

# Upper bound (exclusive) for money values: keeps arithmetic (rate
# conversion, sums in the warehouse) far away from Decimal overflow.
MAX_MONEY = Decimal("1e15")
_ONE = Decimal(1)

_NUMERIC = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CURRENCY = re.compile(r"[A-Za-z]{3}")


def _err(msg: str) -> PydanticCustomError:
    return PydanticCustomError("contract", "{msg}", {"msg": msg})


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):  # bool is an int subclass: check first
        raise _err("must be a decimal number or numeric string, got boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _err(f"must be a finite decimal number, got {value!r}")
        return Decimal(str(value))
    if isinstance(value, str):
        text = value.strip()
        if not _NUMERIC.fullmatch(text):
            raise _err(f"must be a decimal number or numeric string, got {value!r}")
        return Decimal(text)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _err(f"must be a finite decimal number, got {value}")
        return value
    raise _err(f"must be a decimal number or numeric string, got {_json_type(value)}")


def parse_money(value: Any) -> Decimal:
    """JSON number or numeric string -> Decimal >= 0 (and < MAX_MONEY)."""
    amount = _to_decimal(value)
    if amount < 0:
        raise _err(f"must be >= 0, got {value!r}")
    if amount >= MAX_MONEY:
        raise _err(f"must be less than {MAX_MONEY:.0e}, got {value!r}")
    if amount.is_zero() and amount.is_signed():
        amount = amount.copy_abs()  # -0 -> 0
    if amount.as_tuple().exponent > 0:  # type: ignore[operator]
        amount = amount.quantize(_ONE)  # 1E+3 -> 1000 (plain digits for storage)
    return amount


def parse_positive_money(value: Any) -> Decimal:
    """Like parse_money, but 0 is an error too (deal_won revenue)."""
    amount = parse_money(value)
    if amount == 0:
        raise _err(f"must be > 0, got {value!r}")
    return amount


def parse_currency(value: Any) -> str:
    """3-letter ISO 4217 code, returned upper-case."""
    if not isinstance(value, str):
        raise _err(f"must be a 3-letter ISO 4217 currency code, got {_json_type(value)}")
    if not _CURRENCY.fullmatch(value):
        raise _err(f"must be a 3-letter ISO 4217 currency code, got {value!r}")
    return value.upper()


def convert(amount: Decimal, currency: str, reporting_currency: str, rates: Mapping[str, Decimal]) -> Decimal | None:
    """`amount` in `reporting_currency`, or None when there is no rate for `currency`."""
    if currency == reporting_currency:
        return amount
    rate = rates.get(currency)
    if rate is None:
        return None
    return amount * rate


_NUMERIC_PATTERN = r"^\s*[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"

Money = Annotated[
    Decimal,
    BeforeValidator(parse_money),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _NUMERIC_PATTERN},
            ],
            "description": "Decimal number >= 0, as a JSON number or a numeric string.",
        }
    ),
]

PositiveMoney = Annotated[
    Decimal,
    BeforeValidator(parse_positive_money),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": _NUMERIC_PATTERN},
            ],
            "description": "Decimal number > 0, as a JSON number or a numeric string.",
        }
    ),
]

Currency = Annotated[
    str,
    BeforeValidator(parse_currency),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Za-z]{3}$",
            "description": "ISO 4217 currency code (3 letters).",
        }
    ),
]
