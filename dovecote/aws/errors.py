"""The one exception the SQS/SNS codec raises: an AWS error to send back to the client."""

from __future__ import annotations


class AwsError(Exception):
    """An error answer: ``code`` is a model error shape name or a common AWS code.

    The encoder looks the code up in the service model for the HTTP status, the
    legacy query code and the sender/receiver fault, so callers only name the error.
    """

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        # The service ("sqs"/"sns") the failed request was for, once known, so the
        # error is written in that service's terms.
        self.service: str | None = None


def missing(name: str) -> AwsError:
    """A required member is absent."""
    return AwsError("MissingParameter", f"The request must contain the parameter {name}.")


def invalid(name: str, why: str) -> AwsError:
    """A member has the wrong type or form."""
    return AwsError(
        "InvalidParameterValue", f"Value for parameter {name} is invalid. Reason: {why}."
    )
