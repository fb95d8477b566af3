"""The benchmark helpers whose mistakes would silently skew the published figures."""

from __future__ import annotations

import json
import os
import platform

import pytest

from bench import common
from bench.payload import (
    BODY_BYTES,
    CUSTOMER_NAME,
    build_package_payload,
    encode_ulak_body,
    encode_whisperer_body,
)


def test_percentile_interpolates_between_closest_ranks():
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert common.percentile(values, 50) == 2.5
    assert common.percentile(values, 0) == 1.0
    assert common.percentile(values, 100) == 4.0
    # Rank (n - 1) * 0.95 = 2.85: 3 + 0.85 * (4 - 3).
    assert common.percentile(values, 95) == pytest.approx(3.85)


def test_percentile_of_one_hundred_values_matches_the_usual_definition():
    values = [float(number) for number in range(1, 101)]
    assert common.percentile(values, 50) == pytest.approx(50.5)
    assert common.percentile(values, 95) == pytest.approx(95.05)
    assert common.percentile(values, 99) == pytest.approx(99.01)


def test_percentile_refuses_no_values_and_out_of_range_q():
    with pytest.raises(ValueError):
        common.percentile([], 50)
    with pytest.raises(ValueError):
        common.percentile([1.0], 101)


def test_summarize_latencies_reports_milliseconds():
    summary = common.summarize_latencies([0.010, 0.020, 0.030, 0.040, 0.100])
    assert summary["samples"] == 5
    assert summary["p50_ms"] == 30.0
    assert summary["p95_ms"] == 88.0  # 40 + 0.8 * (100 - 40)
    assert summary["max_ms"] == 100.0
    assert summary["mean_ms"] == 40.0


def test_describe_machine_names_the_hardware_and_versions():
    description = common.describe_machine()
    assert description["cpu_cores"] == os.cpu_count()
    assert description["memory_bytes"] > 0
    assert platform.release() in description["kernel"]
    versions = description["versions"]
    assert versions["python"] == platform.python_version()
    assert versions["django"].startswith("5.")
    assert versions["aiohttp"]
    assert versions["sqlite"].count(".") == 2
    json.dumps(description)  # the result goes into the JSON file as it is


def test_package_payload_is_eight_kilobytes_of_turkish_text():
    payload = build_package_payload()
    body = encode_ulak_body(payload)
    assert len(body) == BODY_BYTES
    text = body.decode("utf-8")
    for word in (CUSTOMER_NAME, "Kadıköy", "İstanbul", "İ ı Ş ş Ğ ğ Ç ç Ö ö Ü ü"):
        assert word in text
    # dj-whisperer escapes non-ASCII letters; both encode the very same payload.
    assert json.loads(encode_whisperer_body(payload)) == json.loads(body)
    assert build_package_payload() == payload  # deterministic
