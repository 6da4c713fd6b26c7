"""What every write of the tenants app shares."""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError

from core.errors import ValidationFailed


def full_clean(instance, *, exclude: list[str] | None = None) -> None:
    """The model's own field checks, refused as ``ValidationFailed`` (a 400 with
    the field errors), before anything is written."""
    try:
        instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except DjangoValidationError as exc:
        details = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        first = next(iter(details.values()))[0] if isinstance(details, dict) else details[0]
        raise ValidationFailed(str(first), details=details) from exc
