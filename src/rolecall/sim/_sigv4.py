"""Checking an AWS Signature Version 4 the way AWS does, with the sim's known secret.

The sim recomputes the signature of each request from its raw bytes (method, the
path exactly as sent, query, the signed headers, the body's SHA-256) and the secret
it knows, so a client that signs with a wrong secret, signs the wrong bytes or
encodes the path differently from AWS gets the 403 AWS sends. The rules are AWS's
(the SigV4 documentation and botocore's ``SigV4Auth``): the canonical URI is the
path as sent, percent-encoded once more (non-S3 services encode twice), query pairs
sorted, header values trimmed with inner runs of spaces collapsed, and the key
derived as HMAC chains over date, region, service and ``aws4_request``. A request
dated more than five minutes away from the server's clock is refused.

Written without botocore, so the check is independent of the client's signer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

__all__ = ["SignatureProblem", "check_signature", "credential_of"]

_ALGORITHM = "AWS4-HMAC-SHA256"
_MAX_SKEW = 300.0
_AUTH_FIELD = re.compile(r"(Credential|SignedHeaders|Signature)=([^,\s]+)")
_DATE = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class SignatureProblem:
    """Why AWS refuses the request: its error code (``x-amzn-ErrorType``) and message."""

    code: str
    message: str


def _fields(authorization: str) -> dict[str, str] | None:
    if not authorization.startswith(_ALGORITHM + " "):
        return None
    fields = dict(_AUTH_FIELD.findall(authorization))
    return fields if len(fields) == 3 else None


def credential_of(authorization: str) -> tuple[str, str, str, str] | None:
    """``(access key id, date, region, service)`` of a SigV4 ``Authorization`` header."""
    fields = _fields(authorization)
    if fields is None:
        return None
    parts = fields["Credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return None
    return parts[0], parts[1], parts[2], parts[3]


def _canonical_query(query: str) -> str:
    pairs = [pair.partition("=") for pair in query.split("&") if pair]
    return "&".join(f"{key}={value}" for key, _, value in sorted(pairs))


def _canonical_headers(headers: dict[str, str], names: list[str]) -> str:
    return "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in names)


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def expected_signature(
    secret: str,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    signed: list[str],
    scope: tuple[str, str, str],
) -> str:
    """The hex signature AWS computes for a request (``scope``: date, region, service)."""
    parts = urlsplit(target)
    payload = headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
    canonical = "\n".join(
        [
            method.upper(),
            quote(parts.path or "/", safe="/~"),
            _canonical_query(parts.query),
            _canonical_headers(headers, signed),
            ";".join(signed),
            payload,
        ]
    )
    date, region, service = scope
    string_to_sign = "\n".join(
        [
            _ALGORITHM,
            headers.get("x-amz-date", ""),
            f"{date}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _sign(("AWS4" + secret).encode(), date)
    for step in (region, service, "aws4_request"):
        key = _sign(key, step)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def check_signature(
    *,
    secret: str,
    access_key_id: str,
    service: str,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    now: float | None = None,
) -> SignatureProblem | None:
    """None when the request is signed with ``secret``; else AWS's refusal."""
    authorization = headers.get("authorization", "")
    fields = _fields(authorization)
    credential = credential_of(authorization)
    if fields is None or credential is None:
        return SignatureProblem(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
            "parameters.",
        )
    key_id, date, region, signed_service = credential
    if key_id != access_key_id:
        return SignatureProblem(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if signed_service != service:
        return SignatureProblem(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'. ",
        )
    stamp = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, _DATE).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return SignatureProblem(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    moment = time.time() if now is None else now
    if abs(moment - signed_at) > _MAX_SKEW or not stamp.startswith(date):
        return SignatureProblem("InvalidSignatureException", skew_message(signed_at, moment))
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed:
        return SignatureProblem(
            "InvalidSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization."
        )
    wanted = expected_signature(
        secret, method, target, headers, body, signed, (date, region, signed_service)
    )
    if not hmac.compare_digest(wanted, fields["Signature"]):
        return SignatureProblem(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.",
        )
    return None


def skew_message(signed_at: float, now: float) -> str:
    """AWS's words for a request signed more than five minutes before or after ``now``
    (the signer's clock is off): "Signature expired" or "Signature not yet current"."""

    def stamp(moment: float) -> str:
        return datetime.fromtimestamp(moment, UTC).strftime(_DATE)

    if signed_at > now:
        return (
            f"Signature not yet current: {stamp(signed_at)} is still later than "
            f"{stamp(now + _MAX_SKEW)} ({stamp(now)} + 5 min.)"
        )
    return (
        f"Signature expired: {stamp(signed_at)} is now earlier than "
        f"{stamp(now - _MAX_SKEW)} ({stamp(now)} - 5 min.)"
    )
