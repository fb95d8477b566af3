from __future__ import annotations

import pytest

from ulak.retry import RetryConfigError, countdown, parse_retry_after, validate_retry_config


@pytest.mark.parametrize(
    ("config", "retry_count", "expected"),
    [
        ({"choice": "fixed", "kwargs": {"seconds": 60}}, 1, 60),
        ({"choice": "fixed", "kwargs": {"seconds": 60}}, 11, 60),
        ({"choice": "linear", "kwargs": {"base": 10, "limit": None}}, 1, 0),
        ({"choice": "linear", "kwargs": {"base": 10, "limit": None}}, 4, 30),
        ({"choice": "linear", "kwargs": {"base": 10, "limit": 25}}, 4, 25),
        ({"choice": "exponential", "kwargs": {"base": 2, "factor": 1, "limit": None}}, 1, 1),
        ({"choice": "exponential", "kwargs": {"base": 2, "factor": 3, "limit": None}}, 4, 24),
        ({"choice": "exponential", "kwargs": {"base": 2, "factor": 3, "limit": 20}}, 4, 20),
    ],
)
def test_countdown_uses_value_of_n_minus_one(config, retry_count, expected):
    assert countdown(config, retry_count) == expected


def test_random_countdown_draws_within_bounds_from_injected_source():
    config = {"choice": "random", "kwargs": {"min_value": 5, "max_value": 9}}
    seen = []
    assert countdown(config, 3, randint=lambda a, b: seen.append((a, b)) or b) == 9
    assert seen == [(5, 9)]


def test_exponential_never_overflows():
    config = {"choice": "exponential", "kwargs": {"base": 10, "factor": 1, "limit": None}}
    assert countdown(config, 500) == 365 * 24 * 3600


@pytest.mark.parametrize(
    ("config", "errors"),
    [
        ({"choice": "weekly", "kwargs": {}}, {"choice": ['"weekly" is not a valid choice.']}),
        ({"kwargs": {}}, {"choice": ["This field is required."]}),
        ({"choice": "fixed", "kwargs": {}}, {"kwargs": {"seconds": ["This field is required."]}}),
        (
            {"choice": "fixed", "kwargs": {"seconds": -1}},
            {"kwargs": {"seconds": ["Ensure this value is greater than or equal to 0."]}},
        ),
        (
            {"choice": "fixed", "kwargs": {"seconds": "soon"}},
            {"kwargs": {"seconds": ["A valid integer is required."]}},
        ),
        (
            {"choice": "exponential", "kwargs": {"base": 2, "factor": 0}},
            {"kwargs": {"factor": ["Ensure this value is greater than or equal to 1."]}},
        ),
        (
            {"choice": "random", "kwargs": {"min_value": 9, "max_value": 3}},
            {"kwargs": {"non_field_errors": ["'max_value' must be greater than 'min_value'."]}},
        ),
        (
            {"choice": "fixed", "kwargs": "sixty"},
            {"kwargs": {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}},
        ),
    ],
)
def test_validation_messages_are_the_contracts(config, errors):
    with pytest.raises(RetryConfigError) as raised:
        validate_retry_config(config)
    assert raised.value.errors == errors


def test_validation_normalises_integers_and_defaults():
    assert validate_retry_config({"choice": "exponential", "kwargs": {"base": "2"}}) == {
        "choice": "exponential",
        "kwargs": {"base": 2, "factor": 1},
    }


def test_retry_after_is_capped_and_understands_dates():
    assert parse_retry_after("120", 0, cap=60) == 60
    assert parse_retry_after("5", 0, cap=60) == 5
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:30 GMT", 0, cap=60) == 30
    assert parse_retry_after("garbage", 0, cap=60) is None
    assert parse_retry_after(None, 0, cap=60) is None
