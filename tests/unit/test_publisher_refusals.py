"""Which publish the broker refused when it closes the channel every publish in flight shares;
a body cap the broker could not carry is refused at start-up."""

from __future__ import annotations

import pytest
from aiormq.exceptions import ChannelPreconditionFailed

from processor.broker.publisher import _refused_for
from processor.settings import BROKER_HEADER_ALLOWANCE, Settings

TOO_LARGE = ChannelPreconditionFailed(
    "PRECONDITION_FAILED - message size 200000 is larger than configured max size 131072")


@pytest.mark.parametrize(("size", "refused"), [
    (200_000, True),  # the size the broker names
    (300_000, True),  # over the limit: refused on its own turn anyway
    (1_000, False),  # merely in flight on the same channel: may be sent again
    (131_072, False),
])
def test_only_the_message_of_the_size_the_broker_names_is_refused(
    size: int, refused: bool
) -> None:
    assert _refused_for(TOO_LARGE, b"x" * size) is refused


def test_a_close_over_a_property_refuses_the_message_whatever_its_size() -> None:
    invalid = ChannelPreconditionFailed("PRECONDITION_FAILED - invalid expiration 'x'")
    assert _refused_for(invalid, b"{}")


def test_a_body_cap_leaving_no_room_under_the_broker_limit_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match=r"max_body_bytes .* over broker_max_message_size"):
        Settings(max_body_bytes=16 * 1024 * 1024, broker_max_message_size=16 * 1024 * 1024)
    Settings(max_body_bytes=1024, broker_max_message_size=BROKER_HEADER_ALLOWANCE + 1024)
