"""Bad input at a real ingress process: always a 4xx that names the problem, never a 5xx
(the broker is up), never a crash; property-based bodies, headers and signatures."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.ingress.signature import sign
from tests.conftest import Broker
from tests.faults.harness import RESULTS, Figures
from tests.integration.processes import SECRET, Stack, stack

pytestmark = [pytest.mark.integration, pytest.mark.fault]

NAMED = "named"  # the tenant that receives each named bad body once
STATUSES: Counter[int] = Counter()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)
ENVELOPES = st.fixed_dictionaries(
    {}, optional={"event_id": st.text(max_size=30) | st.integers(), "id": st.text(max_size=30),
                  "event_type": st.text(max_size=40) | JSON, "data": JSON,
                  "event_timestamp": st.text(max_size=40) | JSON},
)
# Header values as HTTP allows them (visible ASCII and inner spaces); control characters are
# refused by the HTTP layer itself, before our code runs.
SIGNATURES = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.just(" "), max_size=120)
    .map(str.strip),
    st.binary(min_size=32, max_size=32).map(lambda b: "sha256 =" + "-".join(f"{x:02X}" for x in b)),
)
CONTENT_TYPES = st.sampled_from(["application/json", "text/plain", "application/xml",
                                 "multipart/form-data", "", "application/json; charset=latin-1"])


@pytest.fixture(scope="module")
def ingress(broker: Broker) -> Iterator[Stack]:
    with stack(broker.url) as running:
        # A second tenant for the named bodies: the property tests before them may already
        # have sent the same bytes, which the default tenant then rightly answers "duplicate".
        running.settings["ZENOTI_EVENTS_TENANTS"] = json.dumps(
            {NAMED: {"webhook_secrets": [SECRET]}})
        running.ingress()
        yield running
        assert running.children[0].poll() is None, "the ingress crashed"
        RESULTS.append(Figures(name="bad input at the ingress",
                               notes={"answers_by_status": dict(sorted(STATUSES.items()))}))


def post(ingress: Stack, body: bytes, headers: dict[str, str], *,
         tenant: str | None = None) -> httpx.Response:
    url = ingress.webhook_url + (f"/{tenant}" if tenant else "")
    response = httpx.post(url, content=body, headers=headers, timeout=30)
    STATUSES[response.status_code] += 1
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["message"], "a 4xx names the problem"
    return response


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=3000), signature=SIGNATURES, ctype=CONTENT_TYPES)
def test_arbitrary_bytes_and_signatures_get_a_4xx(
    ingress: Stack, body: bytes, signature: str, ctype: str
) -> None:
    headers = {"content-type": ctype, "zenoti-webhook-signature": signature}
    response = post(ingress, body, headers)
    assert response.status_code in (200, 401) if not body else response.status_code == 401


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(envelope=ENVELOPES | JSON, ctype=CONTENT_TYPES)
def test_signed_json_of_any_shape_is_accepted_and_parked_when_not_an_envelope(
    ingress: Stack, envelope: object, ctype: str
) -> None:
    # A 4xx to a signed delivery counts towards Zenoti switching the webhook off.
    body = json.dumps(envelope).encode()
    response = post(ingress, body, {"content-type": ctype,
                                    "zenoti-webhook-signature": sign(SECRET, body)})
    valid = (isinstance(envelope, dict) and isinstance(envelope.get("event_type"), str)
             and envelope["event_type"] != "" and isinstance(envelope.get("data"), dict))
    assert response.status_code in (200, 202), response.text
    if not valid and response.status_code == 202:
        assert response.json()["status"] == "parked"
        assert response.json()["reason"] == "invalid_envelope"


@pytest.mark.parametrize(
    ("name", "body", "status", "says"),
    [
        ("10 MiB body", b'{"event_type": "X", "data": {"a": "' + b"x" * (10 << 20) + b'"}}',
         413, "limit"),
        ("invalid UTF-8", b'{"event_type": "X", "data": {"a": "\xff\xfe"}}', 202, "JSON"),
        ("deep nesting", b'{"event_type": "X", "data": ' + b"[" * 100_000 + b"]" * 100_000
         + b"}", 202, "JSON"),
        ("JSON that is not an object", b"[1, 2, 3]", 202, "object"),
        ("a JSON string", b'"Guest.Created"', 202, "object"),
        ("no event_type", b'{"data": {}}', 202, "event_type"),
        ("data not an object", b'{"event_type": "X", "data": "x"}', 202, "data"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else "",
)
def test_named_bad_bodies_get_the_named_error(
    ingress: Stack, name: str, body: bytes, status: int, says: str
) -> None:
    response = post(ingress, body, {"zenoti-webhook-signature": sign(SECRET, body)},
                    tenant=NAMED)
    assert response.status_code == status, (name, response.text)
    assert says in response.json()["message"]


def test_a_valid_delivery_with_a_wrong_content_type_is_still_accepted(ingress: Stack) -> None:
    body = b'{"event_id": "ct-1", "event_type": "Guest.Created", "data": {"id": "g"}}'
    response = post(ingress, body, {"content-type": "text/plain",
                                    "zenoti-webhook-signature": sign(SECRET, body)})
    assert response.status_code == 202
