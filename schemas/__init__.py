"""The leadflow event contract (events.md v1) as pydantic v2 models.

    from schemas import ContractContext, ContractError, validate_event
    event = validate_event(json.loads(line), ContractContext(received_at=now))
"""
from .events import (
    CONVERSATION_CHANNELS,
    EVENT_MODELS,
    EVENT_TYPES,
    MARKETING_CHANNELS,
    AdClick,
    AdSpend,
    CallCompleted,
    ContractContext,
    ContractError,
    ConversationClosed,
    ConversationStarted,
    ConversationTransferred,
    DealLost,
    DealWon,
    Event,
    EventAdapter,
    Lead,
    Message,
    Payment,
    SurveyResponse,
    validate_event,
)
from .identity import IDENTITY_KEYS, Identity, normalize_email, normalize_phone

__all__ = [
    "CONVERSATION_CHANNELS",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "IDENTITY_KEYS",
    "MARKETING_CHANNELS",
    "AdClick",
    "AdSpend",
    "CallCompleted",
    "ContractContext",
    "ContractError",
    "ConversationClosed",
    "ConversationStarted",
    "ConversationTransferred",
    "DealLost",
    "DealWon",
    "Event",
    "EventAdapter",
    "Identity",
    "Lead",
    "Message",
    "Payment",
    "SurveyResponse",
    "export_json_schemas",
    "normalize_email",
    "normalize_phone",
    "validate_event",
]


def __getattr__(name: str):
    # Imported lazily so that `python -m schemas.export` does not import the
    # module twice (runpy warning) and the hot path doesn't pay for it.
    if name == "export_json_schemas":
        from .export import export_json_schemas

        return export_json_schemas
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
