"""The ``zenoti-webhook-signature`` check (REFERENCE 1.3)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import SecretStr

from processor.errors import InvalidSignature
from processor.ingress.signature import digest_of, sign, verify

BODY = b'{"event_type":"Invoice.Closed","data":{}}'
SECRET = "s3cret"
HEX = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()


def secrets(*values: str) -> list[SecretStr]:
    return [SecretStr(v) for v in values]


def test_sign_produces_the_dotnet_dashed_upper_case_form() -> None:
    value = sign(SECRET, BODY)
    assert value.startswith("sha256 =")
    pairs = value.removeprefix("sha256 =").split("-")
    assert len(pairs) == 32 and all(p == p.upper() and len(p) == 2 for p in pairs)
    assert "".join(pairs).lower() == HEX


@pytest.mark.parametrize(
    "header",
    [
        sign(SECRET, BODY),
        "sha256=" + HEX,
        "SHA256 = " + HEX.upper(),
        HEX,
        "  sha256 =" + "-".join(HEX[i : i + 2] for i in range(0, 64, 2)) + "  ",
    ],
)
def test_every_accepted_form_verifies(header: str) -> None:
    verify(BODY, header, secrets(SECRET))


def test_a_rotated_secret_list_accepts_either_secret() -> None:
    verify(BODY, sign("old", BODY), secrets("new", "old"))
    verify(BODY, sign("new", BODY), secrets("new", "old"))


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(BODY, sign("other", BODY), secrets(SECRET))


def test_a_changed_body_is_rejected() -> None:
    with pytest.raises(InvalidSignature):
        verify(BODY + b" ", sign(SECRET, BODY), secrets(SECRET))


def test_missing_header_is_rejected_when_the_tenant_has_secrets() -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        verify(BODY, None, secrets(SECRET))


def test_no_secret_configured_accepts_unsigned_deliveries() -> None:
    verify(BODY, None, [])


@pytest.mark.parametrize("header", ["sha256=", "sha256=zz", "sha256=" + HEX[:-2], "md5=" + HEX])
def test_malformed_headers_are_rejected_with_a_clear_message(header: str) -> None:
    with pytest.raises(InvalidSignature):
        verify(BODY, header, secrets(SECRET))


def test_digest_of_normalises_to_lower_case_hex() -> None:
    assert digest_of(sign(SECRET, BODY)) == HEX


def test_error_messages_never_contain_the_secret() -> None:
    with pytest.raises(InvalidSignature) as info:
        verify(BODY, sign("x", BODY), secrets(SECRET))
    assert SECRET not in str(info.value)
