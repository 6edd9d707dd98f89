"""Identity block of an event (events.md, "Envelope" and "Identity rules").

`email` is compared trimmed and lower-cased; `phone` is compared as E.164
(`+` and 7-15 digits). Both are normalised here, at validation time, so every
consumer sees the comparable form.
"""
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

__all__ = ["IDENTITY_KEYS", "Identity", "normalize_email", "normalize_phone"]

IDENTITY_KEYS = ("visitor_id", "email", "phone", "crm_contact_id")

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]

# Already canonical: "+" then a country code (never 0) then 6-14 more digits.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# Characters people put in phone numbers besides digits. Anything else (letters,
# "#", "*", ...) means the value is not a bare phone number: reject, don't guess.
_PHONE_ALLOWED = re.compile(r"[0-9+\-().\s/]+")
_NOT_DIGIT = re.compile(r"[^0-9]")


def normalize_email(raw: str) -> str:
    """Trim and lower-case; the result must look like `local@domain`.

    Raises ValueError with a one-line, human-readable message otherwise.
    """
    if not isinstance(raw, str):
        raise ValueError(f"email must be a string, got {type(raw).__name__}")
    email = raw.strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"email {raw!r} is not a valid email address (expected name@domain)")
    return email


def normalize_phone(raw: str) -> str:
    """Return the E.164 form `+<digits>` of a phone number.

    Everything but digits is stripped (spaces, dashes, dots, slashes,
    parentheses, a leading `+`); a leading `00` international prefix is
    dropped. The result must have 7-15 digits and must not start with 0 (it
    has to begin with a country code). Letters or other symbols are junk.
    `"+7 (916) 123-45-67"` -> `"+79161234567"`. Raises ValueError for junk.
    """
    if not isinstance(raw, str):
        raise ValueError(f"phone must be a string, got {type(raw).__name__}")
    if _E164.fullmatch(raw):  # fast path: already canonical
        return raw
    text = raw.strip()
    plus = text.startswith("+")
    if (
        not text
        or not _PHONE_ALLOWED.fullmatch(text)
        or text.count("+") > (1 if plus else 0)
    ):
        raise ValueError(f"phone {raw!r} is not a valid E.164 number (expected + country code and 7-15 digits)")
    digits = _NOT_DIGIT.sub("", text)
    if not plus and digits.startswith("00"):
        digits = digits[2:]
    if not 7 <= len(digits) <= 15 or digits[0] == "0":
        raise ValueError(f"phone {raw!r} is not a valid E.164 number (expected + country code and 7-15 digits)")
    return "+" + digits


class Identity(BaseModel):
    """Who the event is about. Any of the keys; values are strings.

    Unknown keys are ignored (not an error). `email` is trimmed and
    lower-cased, `phone` is normalised to E.164. An identity with no known
    key is treated by the events as absent.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    visitor_id: NonEmptyStr | None = Field(None, description="Site/app visitor (cookie) id.")
    email: NonEmptyStr | None = Field(None, description="Email; compared trimmed and lower-cased.")
    phone: NonEmptyStr | None = Field(
        None, description="Phone; compared as E.164 (+ country code and 7-15 digits), e.g. '+7 (916) 123-45-67'."
    )
    crm_contact_id: NonEmptyStr | None = Field(None, description="Contact id in the CRM.")

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return normalize_email(v)
        except ValueError as exc:
            raise PydanticCustomError("contract", "{msg}", {"msg": str(exc)}) from None

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return normalize_phone(v)
        except ValueError as exc:
            raise PydanticCustomError("contract", "{msg}", {"msg": str(exc)}) from None

    @property
    def is_empty(self) -> bool:
        return (
            self.visitor_id is None and self.email is None and self.phone is None and self.crm_contact_id is None
        )

    def items(self) -> tuple[tuple[str, str], ...]:
        """The (key, normalised value) pairs that are set, in IDENTITY_KEYS order."""
        out: list[tuple[str, Any]] = []
        for key in IDENTITY_KEYS:
            value = getattr(self, key)
            if value is not None:
                out.append((key, value))
        return tuple(out)
