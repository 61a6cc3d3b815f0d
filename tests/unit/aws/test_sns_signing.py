"""SNS signatures checked by verifiers written from AWS's docs, not from our code.

AWS's "Verifying the signatures of Amazon SNS messages" says: take the signed
keys in byte order (Notification: Message, MessageId, Subject if present,
Timestamp, TopicArn, Type; confirmations: Message, MessageId, SubscribeURL,
Timestamp, Token, TopicArn, Type), write each key and value on a line of its
own, and verify the base64 Signature with the certificate's public key using
SHA1withRSA (SignatureVersion 1) or SHA256withRSA (2).
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from dovecote.aws.sns_signing import (
    SigningKey,
    generate_signing_key,
    sign,
    string_to_sign,
)

KEY = generate_signing_key()

NOTIFICATION = {
    "Type": "Notification",
    "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
    "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
    "Subject": "My First Message",
    "Message": "Hello world!",
    "Timestamp": "2012-05-02T00:54:06.655Z",
    "SignatureVersion": "1",
    "SigningCertURL": "http://localhost:9911/SimpleNotificationService.pem",
    "UnsubscribeURL": "http://localhost:9911/?Action=Unsubscribe&SubscriptionArn=x",
}

CONFIRMATION = {
    "Type": "SubscriptionConfirmation",
    "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
    "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
    "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
    "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-west-2:123456789012:MyTopic.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
    "SubscribeURL": "http://localhost:9911/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37",
    "Timestamp": "2012-04-26T20:45:04.751Z",
    "SignatureVersion": "1",
    "SigningCertURL": "http://localhost:9911/SimpleNotificationService.pem",
}


def _docs_string_to_sign(message: dict[str, str]) -> bytes:
    """AWS's recipe, written out independently of the module under test."""
    if message["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        if "Subject" not in message:
            keys.remove("Subject")
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{k}\n{message[k]}\n" for k in keys).encode()


def _verifies(message: dict[str, str], cert_pem: bytes) -> bool:
    """A subscriber's check: the certificate's RSA key over the documented string."""
    public_key = x509.load_pem_x509_certificate(cert_pem).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}[message["SignatureVersion"]]
    try:
        public_key.verify(
            base64.b64decode(message["Signature"]),
            _docs_string_to_sign(message),
            padding.PKCS1v15(),
            algorithm,
        )
    except InvalidSignature:
        return False
    return True


def _signed(message: dict[str, str], version: str = "1", key: SigningKey = KEY) -> dict[str, str]:
    return {**message, "SignatureVersion": version, "Signature": sign(message, key, version)}


def test_notification_string_to_sign_layout() -> None:
    assert string_to_sign(NOTIFICATION) == (
        "Message\nHello world!\n"
        "MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n"
        "Subject\nMy First Message\n"
        "Timestamp\n2012-05-02T00:54:06.655Z\n"
        "TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n"
        "Type\nNotification\n"
    )


def test_notification_without_subject_leaves_it_out() -> None:
    message = {k: v for k, v in NOTIFICATION.items() if k != "Subject"}
    assert "Subject" not in string_to_sign(message)
    assert string_to_sign({**message, "Subject": None}) == string_to_sign(message)


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_confirmation_string_to_sign(kind: str) -> None:
    message = {**CONFIRMATION, "Type": kind}
    assert string_to_sign(message).encode() == _docs_string_to_sign(message)
    assert string_to_sign(message).startswith("Message\nYou have chosen")
    assert string_to_sign(message).endswith(f"Type\n{kind}\n")


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize(
    "message", [NOTIFICATION, CONFIRMATION], ids=["notification", "confirmation"]
)
def test_signature_verifies_with_the_certificate(message: dict[str, str], version: str) -> None:
    assert _verifies(_signed(message, version), KEY.certificate_pem())


def test_versions_use_different_digests() -> None:
    as_v1 = _signed(NOTIFICATION, "1")
    assert not _verifies({**as_v1, "SignatureVersion": "2"}, KEY.certificate_pem())


@pytest.mark.parametrize("field", ["Message", "MessageId", "Subject", "Timestamp", "TopicArn"])
def test_tampered_signed_field_fails(field: str) -> None:
    signed = _signed(NOTIFICATION)
    assert not _verifies({**signed, field: signed[field] + "x"}, KEY.certificate_pem())


def test_unsigned_fields_are_free() -> None:
    signed = _signed(NOTIFICATION)
    assert _verifies({**signed, "UnsubscribeURL": "http://elsewhere/"}, KEY.certificate_pem())


def test_other_key_does_not_verify() -> None:
    other = generate_signing_key()
    assert not _verifies(_signed(NOTIFICATION, key=other), KEY.certificate_pem())


def test_key_survives_pem_round_trip() -> None:
    again = SigningKey.from_pem(KEY.private_key_pem(), KEY.certificate_pem())
    assert _verifies(_signed(CONFIRMATION, "2", key=again), KEY.certificate_pem())


def test_certificate_is_self_signed_pem() -> None:
    pem = KEY.certificate_pem()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)


def test_refuses_what_it_cannot_sign() -> None:
    with pytest.raises(ValueError, match="Type"):
        string_to_sign({**NOTIFICATION, "Type": "Other"})
    with pytest.raises(ValueError, match="Token"):
        string_to_sign({k: v for k, v in CONFIRMATION.items() if k != "Token"})
    with pytest.raises(ValueError, match="SignatureVersion"):
        sign(NOTIFICATION, KEY, "3")


@pytest.mark.parametrize(("version", "digest"), [("1", "-sha1"), ("2", "-sha256")])
def test_openssl_command_verifies(tmp_path: Path, version: str, digest: str) -> None:
    """A verifier that shares no code with us: the openssl command line."""
    signed = _signed(NOTIFICATION, version)
    cert = tmp_path / "cert.pem"
    cert.write_bytes(KEY.certificate_pem())
    pubkey = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], check=True, capture_output=True
    ).stdout
    (tmp_path / "pub.pem").write_bytes(pubkey)
    (tmp_path / "sig").write_bytes(base64.b64decode(signed["Signature"]))
    (tmp_path / "data").write_bytes(_docs_string_to_sign(signed))
    result = subprocess.run(
        [
            "openssl",
            "dgst",
            digest,
            "-verify",
            str(tmp_path / "pub.pem"),
            "-signature",
            str(tmp_path / "sig"),
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stdout + result.stderr


_text = st.text(st.characters(codec="utf-8"), max_size=200)


@settings(max_examples=30, deadline=None)
@given(message=_text, subject=st.one_of(st.none(), _text), version=st.sampled_from(["1", "2"]))
def test_any_message_signs_and_verifies(message: str, subject: str | None, version: str) -> None:
    envelope = {**NOTIFICATION, "Message": message}
    envelope.pop("Subject")
    if subject is not None:
        envelope["Subject"] = subject
    assert string_to_sign(envelope).encode() == _docs_string_to_sign(envelope)
    assert _verifies(_signed(envelope, version), KEY.certificate_pem())
