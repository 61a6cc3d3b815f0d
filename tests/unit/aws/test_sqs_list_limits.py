"""MaxResults of the SQS list operations: 1 to 1000 or absent, else
InvalidParameterValue (a negative one on ListDeadLetterSourceQueues was a
500: found by tests/faults/test_sqs_fuzz.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovecote.aws.errors import AwsError
from dovecote.aws.sqs_queues import _max_results


def test_absent_is_none():
    assert _max_results({}) is None


@given(st.integers(1, 1000))
def test_one_to_a_thousand_are_kept(limit):
    assert _max_results({"MaxResults": limit}) == limit


@given(st.integers(max_value=0) | st.integers(min_value=1001))
def test_others_are_invalid_parameter_values(limit):
    with pytest.raises(AwsError) as info:
        _max_results({"MaxResults": limit})
    assert info.value.code == "InvalidParameterValue"
    assert info.value.message == (
        f"Value {limit} for parameter MaxResults is invalid. "
        "Reason: MaxResults must be an integer between 1 and 1000."
    )
