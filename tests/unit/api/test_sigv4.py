"""Signature checks against requests signed by botocore's own signer, as boto3 signs them."""

from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from moorage.api.sigv4 import Refusal, SignatureCheck, load_keys
from moorage.errors import ValidationError
from moorage.http import Request

HOST = "127.0.0.1:8080"
KEYS = {"AKIDTEAMA": "secret-a", "AKIDTEAMB": "secret-b"}


def signed(
    body: bytes = b'{"x": 1}',
    *,
    key: tuple[str, str] = ("AKIDTEAMA", "secret-a"),
    region: str = "us-east-1",
    service: str = "sagemaker",
    path: str = "/endpoints/churn/invocations",
    query: str = "",
) -> Request:
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    client_side = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": "application/json", "X-Amzn-SageMaker-Custom-Attributes": "a=1"},
    )
    SigV4Auth(Credentials(*key), service, region).add_auth(client_side)
    # What arrives: the signed headers plus what the HTTP client adds, names lower-cased.
    headers = {name.lower(): value for name, value in client_side.headers.items()}
    headers |= {"host": HOST, "user-agent": "Boto3/1.35", "content-length": str(len(body))}
    return Request("POST", path, query, headers, [body[:3], body[3:]])


@pytest.fixture
def check():
    return SignatureCheck(KEYS, "us-east-1")


def refusal(check: SignatureCheck, request: Request, **kw) -> Refusal:
    with pytest.raises(Refusal) as caught:
        check.verify(request, **kw)
    return caught.value


@pytest.mark.parametrize("key", list(KEYS.items()))
def test_a_request_signed_with_any_configured_key_passes(check, key):
    check.verify(signed(key=key))


def test_a_query_string_and_an_empty_body_are_signed_too(check):
    check.verify(signed(b"", path="/", query="b=2&a=1"))


def test_no_authorization_header_is_a_missing_token(check):
    request = signed()
    del request.headers["authorization"]
    assert refusal(check, request).code == "MissingAuthenticationTokenException"
    assert refusal(check, request).status == 403


def test_an_unknown_key_is_an_unrecognized_client(check):
    found = refusal(check, signed(key=("AKIDNOBODY", "secret-a")))
    assert (found.status, found.code) == (403, "UnrecognizedClientException")


def test_a_wrong_secret_does_not_match(check):
    found = refusal(check, signed(key=("AKIDTEAMA", "secret-b")))
    assert (found.status, found.code) == (403, "InvalidSignatureException")
    assert "does not match" in found.message


def test_a_changed_body_does_not_match(check):
    request = signed(b'{"x": 1}')
    tampered = Request(request.method, request.path, "", request.headers, b'{"x": 2}')
    assert refusal(check, tampered).code == "InvalidSignatureException"


def test_a_changed_signed_header_does_not_match(check):
    request = signed()
    request.headers["x-amzn-sagemaker-custom-attributes"] = "a=2"
    assert refusal(check, request).code == "InvalidSignatureException"


def test_an_unsigned_header_may_change(check):
    request = signed()
    request.headers["user-agent"] = "something else"
    check.verify(request)


def test_a_body_hash_header_must_match_the_body(check):
    request = signed()
    request.headers["x-amz-content-sha256"] = "0" * 64
    assert refusal(check, request).code == "XAmzContentSHA256Mismatch"


@pytest.mark.parametrize(
    ("region", "service", "says"),
    [("eu-west-1", "sagemaker", "region"), ("us-east-1", "s3", "service")],
)
def test_the_credential_scope_must_be_this_region_and_service(check, region, service, says):
    found = refusal(check, signed(region=region, service=service))
    assert found.code == "InvalidSignatureException"
    assert says in found.message


@pytest.mark.parametrize("minutes", [-16, 16])
def test_a_signature_more_than_15_minutes_off_the_clock_is_refused(check, minutes):
    request = signed()
    found = refusal(check, request, now=datetime.now(UTC) + timedelta(minutes=minutes))
    assert found.code == "InvalidSignatureException"
    assert "expired" in found.message if minutes > 0 else "not yet current" in found.message
    check.verify(request, now=datetime.now(UTC) + timedelta(minutes=minutes // 2))


@pytest.mark.parametrize(
    "header",
    [
        "AWS AKIDTEAMA:abc",
        "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDTEAMA/20261201/us-east-1/sagemaker, "
        "SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIDTEAMA/20261201/us-east-1/sagemaker/aws4_request, "
        "SignedHeaders=x-amz-date, Signature=00",
    ],
)
def test_a_malformed_authorization_is_an_incomplete_signature(check, header):
    request = signed()
    request.headers["authorization"] = header
    found = refusal(check, request)
    assert (found.status, found.code) == (400, "IncompleteSignatureException")


def test_keys_come_from_every_profile_of_a_shared_credentials_file(tmp_path):
    path = tmp_path / "credentials"
    path.write_text(
        "[team-a]\naws_access_key_id = AKIDTEAMA\naws_secret_access_key = secret-a\n\n"
        "[team-b]\naws_access_key_id=AKIDTEAMB\naws_secret_access_key=secret-b\n"
    )
    assert load_keys(path) == KEYS


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "cannot read"),
        ("", "holds no profile"),
        ("[team-a]\naws_access_key_id = AKIDTEAMA\n", "needs aws_access_key_id and"),
        ("aws_access_key_id = AKIDTEAMA\n", "cannot read"),
    ],
)
def test_an_unusable_credentials_file_is_a_clear_error(tmp_path, text, says):
    path = tmp_path / "credentials"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ValidationError, match=says):
        load_keys(path)
