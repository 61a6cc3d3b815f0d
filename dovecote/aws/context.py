"""Who and where a request is: its region, the account, and the base URL queue URLs use.

Queue URLs are built from the request's own Host header (and scheme), never a
fixed host: emulators that did so broke users behind Docker and proxies.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from dovecote.aws.errors import AwsError


@dataclass(frozen=True, slots=True)
class RequestContext:
    region: str
    account: str
    base_url: str  # "http://host:port", from the request
    access_key: str | None = None

    def queue_url(self, name: str) -> str:
        return f"{self.base_url}/{self.account}/{name}"

    def arn(self, service: str, name: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{name}"


def queue_name_from_url(url: str) -> str:
    """The queue a QueueUrl names: its last path segment. The host is not
    checked (clients reach us through proxies and port mappings); a URL with
    no path names no queue."""
    path = urlsplit(url).path if "://" in url else url
    name = path.rstrip("/").rpartition("/")[2]
    if not name:
        raise AwsError("QueueDoesNotExist", "The specified queue does not exist.")
    return name


def name_from_arn(arn: str, service: str) -> str:
    """The resource name at the end of an ARN of ``service``; InvalidParameterValue otherwise."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != service or not parts[5]:
        raise AwsError(
            "InvalidParameterValue" if service == "sqs" else "InvalidParameter",
            f"Invalid parameter: {arn} is not a valid {service.upper()} ARN",
        )
    return parts[5]
