"""AWS Signature Version 4 verification of an HTTP request (sans I/O).

The listener hands over the request as received; this module recomputes the
canonical request and signature as AWS does and says which AWS error a bad
request earns. The credential scope (and so the region, which ARNs and queue
URLs need) is readable even when verification is turned off.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_plus

__all__ = [
    "ALGORITHM",
    "MAX_SKEW",
    "Authorization",
    "Credential",
    "SignatureError",
    "VerifyResult",
    "canonical_request",
    "credential_scope",
    "parse_authorization",
    "signature",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_UNSIGNED_PAYLOADS = frozenset({"UNSIGNED-PAYLOAD"})

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class SignatureError(ValueError):
    """A request AWS would refuse; ``code`` is the AWS error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Credential:
    """``AKID/20261204/us-east-1/sqs/aws4_request``, split."""

    access_key: str
    date: str
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True, slots=True)
class Authorization:
    """A parsed ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of :func:`verify`: ``ok``, or the AWS ``code`` and ``message`` to answer with."""

    ok: bool
    code: str | None = None
    message: str = ""
    credential: Credential | None = None


def _header_pairs(headers: Headers) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(name.lower(), value) for name, value in items]


def _header(pairs: list[tuple[str, str]], name: str) -> str | None:
    values = [value for key, value in pairs if key == name]
    return ",".join(values) if values else None


def parse_authorization(value: str) -> Authorization:
    """Parse the header's value; raise :class:`SignatureError` (IncompleteSignature) if malformed."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError("IncompleteSignature", f"Unsupported AWS 'algorithm': '{algorithm}'")
    params: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            params[key] = val
    missing = [
        name for name in ("Credential", "SignedHeaders", "Signature") if not params.get(name)
    ]
    if missing:
        detail = " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
        raise SignatureError("IncompleteSignature", f"{detail} Authorization={value}")
    parts = params["Credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise SignatureError(
            "IncompleteSignature",
            f"Credential should be scoped to a valid region, service and terminator. "
            f"Credential={params['Credential']}",
        )
    credential = Credential(access_key=parts[0], date=parts[1], region=parts[2], service=parts[3])
    signed = tuple(params["SignedHeaders"].split(";"))
    return Authorization(
        credential=credential, signed_headers=signed, signature=params["Signature"]
    )


def credential_scope(headers: Headers) -> Credential | None:
    """The request's credential scope, or None; never raises (for when verification is off)."""
    value = _header(_header_pairs(headers), "authorization")
    if value is None:
        return None
    try:
        return parse_authorization(value).credential
    except SignatureError:
        return None


def _canonical_path(path: str) -> str:
    """Dot segments and empty segments removed, then URI-encoded once more (non-S3 rule)."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
        else:
            segments.append(segment)
    normalized = "/" + "/".join(segments)
    if path.endswith("/") and segments:
        normalized += "/"
    return quote(normalized, safe="/~")


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _canonical_query(query: str) -> str:
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        # '+' is a space here, as botocore's form-encoded GET parameters send it.
        pairs.append((_uri_encode(unquote_plus(key)), _uri_encode(unquote_plus(value))))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _canonical_header_value(value: str) -> str:
    return " ".join(value.split())


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Headers,
    signed_headers: Iterable[str],
    payload_hash: str,
) -> str:
    """The SigV4 canonical request; ``path`` and ``query`` are raw, as on the wire."""
    pairs = _header_pairs(headers)
    names = sorted(name.lower() for name in signed_headers)
    lines = [
        f"{name}:{_canonical_header_value(','.join(v for k, v in pairs if k == name))}"
        for name in names
    ]
    return "\n".join(
        [
            method.upper(),
            _canonical_path(path),
            _canonical_query(query),
            "\n".join(lines) + "\n",
            ";".join(names),
            payload_hash,
        ]
    )


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signature(secret: str, credential: Credential, amz_date: str, canonical: str) -> str:
    """Hex signature of a canonical request with the key derived from ``secret``."""
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            amz_date,
            credential.scope,
            hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + secret).encode("utf-8"), credential.date)
    key = _hmac(key, credential.region)
    key = _hmac(key, credential.service)
    key = _hmac(key, "aws4_request")
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _request_time(pairs: list[tuple[str, str]]) -> tuple[str, datetime]:
    amz_date = _header(pairs, "x-amz-date")
    if amz_date is not None:
        try:
            when = datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise SignatureError(
                "IncompleteSignature", f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
            ) from None
        return amz_date, when
    date = _header(pairs, "date")
    if date is not None:
        try:
            when = parsedate_to_datetime(date).astimezone(UTC)
        except (TypeError, ValueError):
            raise SignatureError("IncompleteSignature", f"Invalid Date header '{date}'.") from None
        return when.strftime(_AMZ_DATE), when
    raise SignatureError(
        "IncompleteSignature",
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    )


def _check(
    method: str,
    path: str,
    query: str,
    headers: Headers,
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime,
) -> Credential:
    pairs = _header_pairs(headers)
    value = _header(pairs, "authorization")
    if value is None:
        raise SignatureError(
            "MissingAuthenticationToken", "Request is missing Authentication Token"
        )
    auth = parse_authorization(value)
    credential = auth.credential
    amz_date, when = _request_time(pairs)
    if amz_date[:8] != credential.date:
        raise SignatureError(
            "SignatureDoesNotMatch",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{credential.date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    now_text = now.astimezone(UTC).strftime(_AMZ_DATE)
    if when < now - MAX_SKEW:
        earliest = (now - MAX_SKEW).astimezone(UTC).strftime(_AMZ_DATE)
        raise SignatureError(
            "SignatureDoesNotMatch",
            f"Signature expired: {amz_date} is now earlier than {earliest} ({now_text} - 15 min.)",
        )
    if when > now + MAX_SKEW:
        latest = (now + MAX_SKEW).astimezone(UTC).strftime(_AMZ_DATE)
        raise SignatureError(
            "SignatureDoesNotMatch",
            f"Signature not yet current: {amz_date} is still later than {latest} "
            f"({now_text} + 15 min.)",
        )
    secret = secret_for(credential.access_key)
    if secret is None:
        raise SignatureError(
            "InvalidClientTokenId", "The security token included in the request is invalid."
        )
    # The real body's hash, so a declared x-amz-content-sha256 that lies fails the signature.
    declared = _header(pairs, "x-amz-content-sha256")
    payload_hash = (
        declared
        if declared is not None and declared in _UNSIGNED_PAYLOADS
        else hashlib.sha256(body).hexdigest()
    )
    canonical = canonical_request(method, path, query, pairs, auth.signed_headers, payload_hash)
    expected = signature(secret, credential, amz_date, canonical)
    if not hmac.compare_digest(expected.encode(), auth.signature.encode("utf-8", "replace")):
        raise SignatureError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. "
            "Consult the service documentation for details.",
        )
    return credential


def verify(
    method: str,
    path: str,
    query: str,
    headers: Headers,
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime,
) -> VerifyResult:
    """Verify a header-signed request.

    ``path`` is the raw (still percent-encoded) path and ``query`` the raw query
    string without ``?``; ``secret_for`` maps an access key id to its secret, or
    None when the key is unknown; ``now`` is an aware datetime. Requests more
    than 15 minutes off ``now`` fail as AWS fails them.
    """
    pairs = _header_pairs(headers)
    try:
        credential = _check(method, path, query, pairs, body, secret_for, now)
    except SignatureError as exc:
        return VerifyResult(
            ok=False, code=exc.code, message=exc.message, credential=credential_scope(pairs)
        )
    return VerifyResult(ok=True, credential=credential)
