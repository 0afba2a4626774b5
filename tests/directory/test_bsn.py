"""Recognising a citizen service number (BSN) by the eleven-test."""

from __future__ import annotations

import pytest

from vault.directory.bsn import BsnNotStored, contains_bsn, passes_eleven_test, refuse_bsn


@pytest.mark.parametrize("number", ["111222333", "123456782", "999999990"])
def test_numbers_passing_the_eleven_test(number: str) -> None:
    assert passes_eleven_test(number)


@pytest.mark.parametrize(
    "number", ["123456789", "111222334", "000000000", "12345678", "1234567890"]
)
def test_numbers_failing_it(number: str) -> None:
    assert not passes_eleven_test(number)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("BSN 111222333", True),
        ("111.222.333", True),
        ("111 22 23 33", True),
        ("111-222-333", True),
        ("born 2023-04-02", False),
        ("call 0612345678", False),  # ten digits: a phone number
        ("1111222333", False),  # ten digits
        ("order 123456789", False),
    ],
)
def test_finding_one_in_text(text: str, found: bool) -> None:
    assert contains_bsn(text) is found


def test_field_names_are_refused_anywhere() -> None:
    with pytest.raises(BsnNotStored):
        refuse_bsn({"meta": [{"child_bsn": "x"}]}, scan_values=False)
    with pytest.raises(BsnNotStored):
        refuse_bsn({"Citizen_Service_Number": 1}, scan_values=False)
    refuse_bsn({"absent": "111222333"}, scan_values=False)  # values only when asked
    with pytest.raises(BsnNotStored):
        refuse_bsn({"absent": "111222333"}, scan_values=True)
