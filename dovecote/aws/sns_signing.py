"""Signatures on SNS messages, so subscribers' validators accept what we deliver.

SNS signs each HTTP(S) delivery: the envelope's fields, in AWS's documented
order, make a string to sign; SignatureVersion 1 signs it with SHA1withRSA,
2 with SHA256withRSA; the certificate is served at SigningCertURL.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "SigningKey",
    "generate_signing_key",
    "sign",
    "signing_keys",
    "string_to_sign",
]

_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The broker's RSA key and the self-signed certificate served at SigningCertURL."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self) -> bytes:
        """Unencrypted PKCS#8, for keeping the key across restarts (subscribers cache the cert)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, private_key_pem: bytes, certificate_pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("SNS signing needs an RSA private key")
        return cls(key, x509.load_pem_x509_certificate(certificate_pem))


def generate_signing_key(
    common_name: str = "sns.dovecote.local",
    *,
    key_size: int = 2048,
    valid_for: timedelta = timedelta(days=3650),
    now: datetime | None = None,
) -> SigningKey:
    """A new RSA key pair and a self-signed certificate for it (done once per broker)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + valid_for)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return SigningKey(key, certificate)


def signing_keys(envelope: Mapping[str, str | None]) -> tuple[str, ...]:
    """The envelope keys that are signed, in order; a Notification's Subject only if present."""
    kind = envelope.get("Type")
    if kind == "Notification":
        return tuple(k for k in _NOTIFICATION_KEYS if k != "Subject" or envelope.get(k) is not None)
    if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        return _CONFIRMATION_KEYS
    raise ValueError(f"unknown SNS message Type {kind!r}")


def string_to_sign(envelope: Mapping[str, str | None]) -> str:
    """Each signed key and its value on its own line, each line ending in a newline."""
    lines: list[str] = []
    for key in signing_keys(envelope):
        value = envelope.get(key)
        if value is None:
            raise ValueError(f"SNS message lacks {key!r}, which is signed")
        lines += (key, value)
    return "".join(line + "\n" for line in lines)


def sign(envelope: Mapping[str, str | None], key: SigningKey, signature_version: str = "1") -> str:
    """Base64 ``Signature`` of the envelope: version "1" SHA1withRSA, "2" SHA256withRSA."""
    algorithm = _HASHES.get(signature_version)
    if algorithm is None:
        raise ValueError(f"unknown SNS SignatureVersion {signature_version!r}")
    data = string_to_sign(envelope).encode("utf-8")
    raw = key.private_key.sign(data, padding.PKCS1v15(), algorithm())
    return base64.b64encode(raw).decode("ascii")
