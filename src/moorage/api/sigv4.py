"""AWS Signature Version 4 checks for requests from boto3 and the SageMaker SDK (DESIGN.md §8).

botocore computes the canonical request and the signature, so the server signs exactly as the
client did; this module only reads what the client says it signed (the Authorization header)
and refuses with the codes AWS's JSON services use.
"""

import configparser
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from moorage.errors import ValidationError
from moorage.http import Request

# Both sagemaker and sagemaker-runtime sign as "sagemaker" (their service models' signingName).
SERVICE: Final = "sagemaker"
_ALGORITHM: Final = "AWS4-HMAC-SHA256"
# AWS accepts a request signed up to 15 minutes before or after its own clock.
_SKEW: Final = timedelta(minutes=15)
_UNSIGNED: Final = "UNSIGNED-PAYLOAD"
_MISMATCH: Final = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


class Refusal(Exception):
    """A request that fails authentication, with the status and code AWS would answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def load_keys(path: Path) -> dict[str, str]:
    """Access key id -> secret key, from a file in the AWS shared credentials format.

    Every profile in the file is a key the server accepts, so one file can hold a key per
    team or client; clients sign with any of them as they would with AWS's.
    """
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as stream:
            parser.read_file(stream)
    except (OSError, configparser.Error) as exc:
        raise ValidationError(f"cannot read the credentials file {path}: {exc}") from exc
    keys: dict[str, str] = {}
    for name in parser.sections():
        section = parser[name]
        key_id = section.get("aws_access_key_id", "").strip()
        secret = section.get("aws_secret_access_key", "").strip()
        if not key_id or not secret:
            raise ValidationError(
                f"profile [{name}] of {path} needs aws_access_key_id and aws_secret_access_key"
            )
        keys[key_id] = secret
    if not keys:
        raise ValidationError(f"the credentials file {path} holds no profile")
    return keys


class SignatureCheck:
    """Accepts a request only when it carries a valid signature from one of ``keys``."""

    def __init__(self, keys: dict[str, str], region: str) -> None:
        self._keys = keys
        self._region = region

    def verify(self, request: Request, now: datetime | None = None) -> None:
        """Return if ``request`` is signed by a known key for this region; raise Refusal if not."""
        header = request.headers.get("authorization")
        if header is None:
            raise Refusal(
                403, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        key_id, date, region, service, signed, signature = _parse(header)
        secret = self._keys.get(key_id)
        if secret is None:
            raise Refusal(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if region != self._region:
            raise Refusal(
                403,
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{region}'. ",
            )
        if service != SERVICE:
            raise Refusal(
                403,
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: '{SERVICE}'. ",
            )
        timestamp = _timestamp(request, date, signed, now or datetime.now(UTC))
        expected = _Signer(secret, region, signed, _payload_hash(request)).sign(request, timestamp)
        if not hmac.compare_digest(expected, signature):
            raise Refusal(403, "InvalidSignatureException", _MISMATCH)


def _parse(header: str) -> tuple[str, str, str, str, list[str], str]:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != _ALGORITHM:
        raise Refusal(
            400,
            "IncompleteSignatureException",
            f"Unsupported authorization type {algorithm!r}; moorage takes {_ALGORITHM} only.",
        )
    fields = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    missing = [
        name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)
    ]
    if missing:
        raise Refusal(
            400,
            "IncompleteSignatureException",
            f"Authorization header requires {', '.join(repr(m) for m in missing)} parameter(s). "
            f"Authorization={header}",
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise Refusal(
            400,
            "IncompleteSignatureException",
            "Credential must have the form <key id>/<date>/<region>/<service>/aws4_request, "
            f"not {fields['Credential']!r}.",
        )
    key_id, date, region, service, _ = scope
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed:
        raise Refusal(
            400, "IncompleteSignatureException", "SignedHeaders must include the host header."
        )
    return key_id, date, region, service, signed, fields["Signature"]


def _timestamp(request: Request, date: str, signed: list[str], now: datetime) -> str:
    stamp = request.headers.get("x-amz-date")
    if stamp is None or "x-amz-date" not in signed:
        raise Refusal(
            400, "IncompleteSignatureException", "The request must carry a signed X-Amz-Date."
        )
    try:
        # fromisoformat takes more forms than SigV4's one, hence the shape check; strptime
        # would cost more than the rest of the check together.
        if len(stamp) != len("20261201T000000Z") or stamp[8] != "T" or stamp[-1] != "Z":
            raise ValueError(stamp)
        when = datetime.fromisoformat(stamp)
    except ValueError:
        raise Refusal(
            400, "IncompleteSignatureException", f"X-Amz-Date {stamp!r} is not a timestamp."
        ) from None
    if not stamp.startswith(date):
        raise Refusal(
            403,
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{date}' != '{stamp[:8]}', from '{stamp}'.",
        )
    if abs(now - when) > _SKEW:
        edge = (now - _SKEW).strftime(SIGV4_TIMESTAMP)
        raise Refusal(
            403,
            "InvalidSignatureException",
            f"Signature expired: {stamp} is now earlier than {edge} "
            f"({now.strftime(SIGV4_TIMESTAMP)} - 15 min.)"
            if when < now
            else f"Signature not yet current: {stamp} is still later than "
            f"{(now + _SKEW).strftime(SIGV4_TIMESTAMP)} "
            f"({now.strftime(SIGV4_TIMESTAMP)} + 15 min.)",
        )
    return stamp


def _payload_hash(request: Request) -> str:
    """The body's sha256, checked against X-Amz-Content-SHA256 when the client sent one."""
    digest = hashlib.sha256()
    for part in request.parts:
        digest.update(part)
    actual = digest.hexdigest()
    claimed = request.headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != _UNSIGNED and claimed != actual:
        raise Refusal(
            400,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    return actual if claimed is None else claimed


class _Signer(SigV4Auth):  # type: ignore[misc]
    """botocore's signer, fed the headers the client signed and the body hash taken once."""

    def __init__(self, secret: str, region: str, signed: list[str], payload: str) -> None:
        super().__init__(Credentials("", secret), SERVICE, region)
        self._signed = signed
        self._payload = payload

    def sign(self, request: Request, timestamp: str) -> str:
        host = request.headers.get("host", "")
        url = f"http://{host}{request.path}" + (f"?{request.query}" if request.query else "")
        headers = {name: request.headers.get(name, "") for name in self._signed}
        signable = AWSRequest(method=request.method, url=url, headers=headers)
        signable.context["timestamp"] = timestamp
        canonical = self.canonical_request(signable)
        return str(self.signature(self.string_to_sign(signable, canonical), signable))

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return request.headers

    def payload(self, request: AWSRequest) -> str:
        return self._payload
