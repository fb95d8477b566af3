"""Retry countdown policies (contract §4): pure code, no Django, no clock.

A webhook's ``retry_countdown_config`` is ``{"choice": C, "kwargs": {...}}``. After the
n-th failed attempt the next one is due ``countdown(config, n)`` seconds later, where
the policy's ``value(k)`` is taken at ``k = n - 1``.

Validation returns errors in exactly the shape and words Django REST framework gives
(the webhook library the OMS used validated with DRF serializers), without importing it.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CHOICES = ("fixed", "linear", "exponential", "random")

# No schedule may put an attempt further away than this (and datetimes must not overflow).
MAX_COUNTDOWN_SECONDS = 365 * 24 * 3600

REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
INVALID_INTEGER = "A valid integer is required."
TOO_LARGE_STRING = "String value too large."
MIN_VALUE = "Ensure this value is greater than or equal to {limit}."
RANDOM_ORDER = "'max_value' must be greater than 'min_value'."
INVALID_CHOICE = '"{choice}" is not a valid choice.'


@dataclass(frozen=True)
class IntegerArgument:
    name: str
    minimum: int
    required: bool = True
    nullable: bool = False
    default: int | None = None


ARGUMENTS: dict[str, tuple[IntegerArgument, ...]] = {
    "fixed": (IntegerArgument("seconds", 0),),
    "linear": (
        IntegerArgument("base", 0),
        IntegerArgument("limit", 0, required=False, nullable=True),
    ),
    "exponential": (
        IntegerArgument("base", 0),
        IntegerArgument("factor", 1, required=False, default=1),
        IntegerArgument("limit", 0, required=False, nullable=True),
    ),
    "random": (IntegerArgument("min_value", 0), IntegerArgument("max_value", 0)),
}

_DECIMAL_ZEROS = re.compile(r"\.0*\s*$")


class RetryConfigError(ValueError):
    """A ``retry_countdown_config`` that does not validate; ``errors`` is DRF-shaped."""

    def __init__(self, errors: dict[str, Any]):
        super().__init__(errors)
        self.errors = errors


def _dict_error(value: Any) -> list[str]:
    return [f"Invalid data. Expected a dictionary, but got {type(value).__name__}."]


def _to_integer(value: Any) -> int:
    """DRF IntegerField semantics: 5, "5", 5.0 and "5.0" are 5; 5.5, "x" and True are not."""
    if isinstance(value, bool):
        raise ValueError(INVALID_INTEGER)
    if isinstance(value, str) and len(value) > 1000:
        raise ValueError(TOO_LARGE_STRING)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(INVALID_INTEGER)
    try:
        return int(_DECIMAL_ZEROS.sub("", str(value)))
    except (ValueError, TypeError, OverflowError):
        raise ValueError(INVALID_INTEGER) from None


def validate_retry_config(config: Any) -> dict[str, Any]:
    """Return the normalised config or raise ``RetryConfigError`` with DRF-shaped errors."""
    if not isinstance(config, Mapping):
        raise RetryConfigError({"non_field_errors": _dict_error(config)})
    errors: dict[str, Any] = {}
    for key in ("choice", "kwargs"):
        if key not in config:
            errors[key] = [REQUIRED]
        elif config[key] is None:
            errors[key] = [NOT_NULL]
    if errors:
        raise RetryConfigError(errors)
    choice = config["choice"]
    if not isinstance(choice, str | int | float) or str(choice) not in CHOICES:
        raise RetryConfigError({"choice": [INVALID_CHOICE.format(choice=choice)]})
    choice = str(choice)
    kwargs = config["kwargs"]
    if not isinstance(kwargs, Mapping):
        raise RetryConfigError({"kwargs": {"non_field_errors": _dict_error(kwargs)}})

    clean: dict[str, Any] = {}
    kwarg_errors: dict[str, list[str]] = {}
    for argument in ARGUMENTS[choice]:
        if argument.name not in kwargs:
            if argument.required:
                kwarg_errors[argument.name] = [REQUIRED]
            elif argument.default is not None:
                clean[argument.name] = argument.default
            continue
        value = kwargs[argument.name]
        if value is None:
            if argument.nullable:
                clean[argument.name] = None
            else:
                kwarg_errors[argument.name] = [NOT_NULL]
            continue
        try:
            number = _to_integer(value)
        except ValueError as error:
            kwarg_errors[argument.name] = [str(error)]
            continue
        if number < argument.minimum:
            kwarg_errors[argument.name] = [MIN_VALUE.format(limit=argument.minimum)]
            continue
        clean[argument.name] = number
    if not kwarg_errors and choice == "random" and clean["min_value"] >= clean["max_value"]:
        kwarg_errors["non_field_errors"] = [RANDOM_ORDER]
    if kwarg_errors:
        raise RetryConfigError({"kwargs": kwarg_errors})
    return {"choice": choice, "kwargs": clean}


def policy_value(
    config: Mapping[str, Any], k: int, randint: Callable[[int, int], int] = random.randint
) -> float:
    """The policy's ``value(k)`` of contract §4, in seconds, bounded by MAX_COUNTDOWN_SECONDS."""
    choice = config["choice"]
    kwargs = config.get("kwargs") or {}
    k = max(k, 0)
    if choice == "fixed":
        value: float = kwargs["seconds"]
    elif choice == "linear":
        value = kwargs["base"] * k
        if kwargs.get("limit") is not None:
            value = min(value, kwargs["limit"])
    elif choice == "exponential":
        base, factor, limit = kwargs["base"], kwargs.get("factor", 1) or 1, kwargs.get("limit")
        # base ** k explodes quickly; compare in logarithms before computing it.
        if base > 1 and k * math.log(base) + math.log(factor) > math.log(MAX_COUNTDOWN_SECONDS):
            value = MAX_COUNTDOWN_SECONDS
        else:
            value = base**k * factor
        if limit is not None:
            value = min(value, limit)
    elif choice == "random":
        value = randint(kwargs["min_value"], kwargs["max_value"])
    else:
        raise ValueError(f"unknown retry countdown choice {choice!r}")
    return float(min(max(value, 0), MAX_COUNTDOWN_SECONDS))


def countdown(
    config: Mapping[str, Any],
    retry_count: int,
    randint: Callable[[int, int], int] = random.randint,
) -> float:
    """Seconds from the n-th failed attempt (n = ``retry_count``) to the next one."""
    return policy_value(config, retry_count - 1, randint)


def parse_retry_after(value: str | None, now_timestamp: float, cap: float) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta or HTTP date), capped; None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), cap))
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return float(min(max(when.timestamp() - now_timestamp, 0.0), cap))
