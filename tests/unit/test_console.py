"""``zenoti-events up``'s console: events above, one summary line redrawn in place on a
terminal; printed when it changed elsewhere; figures it could not read shown as ``?``."""

from __future__ import annotations

import io

from processor.dev.console import Console, Counts, Scoreboard


def board(counts: Counts) -> Scoreboard:
    scoreboard = Scoreboard("amqp://127.0.0.1:9/", "http://127.0.0.1:9/metrics",
                            "http://127.0.0.1:9/metrics", tiers=[5.0])
    scoreboard.latest = counts
    return scoreboard


def lines(*events: str) -> io.BytesIO:
    return io.BytesIO("".join(f"{event}\n" for event in events).encode())


def test_the_summary_says_waiting_for_the_api_budget_until_a_failure_was_retried() -> None:
    assert Counts(5, 3, 1, 1).line() == (
        "accepted 5  enriched 3  parked 1  waiting for the API budget 1")
    assert Counts(5, 3, None, None, retried=True).line() == (
        "accepted 5  enriched 3  parked ?  waiting ? (API budget or retry)")


def test_on_a_terminal_events_print_above_one_summary_line_redrawn_in_place() -> None:
    out = io.StringIO()
    console = Console(out, tty=True)
    scores = board(Counts(2, 1, 0, 1))
    console.show(scores)
    console.follow(lines("guest.membership.frozen one")).join(5)
    console.refresh()
    console.refresh()  # nothing new: nothing drawn again
    scores.latest = Counts(2, 2, 0, 0)
    console.refresh()
    console.close()

    shown = out.getvalue().replace("\r\x1b[K", "\n").split("\n")
    assert [line for line in shown if line] == [
        "guest.membership.frozen one",
        "accepted 2  enriched 1  parked 0  waiting for the API budget 1",
        "accepted 2  enriched 2  parked 0  waiting for the API budget 0",
    ]
    assert out.getvalue().endswith("waiting for the API budget 0\n")


def test_elsewhere_the_summary_is_printed_when_it_changed_and_at_the_end() -> None:
    out = io.StringIO()
    console = Console(out, tty=False)
    console.refresh()  # no figures yet: no line
    scores = board(Counts(1, 0, 0, 1))
    console.show(scores)
    console.refresh()
    scores.latest = Counts(1, 1, 0, 0)
    console.refresh()  # changed, but printed a moment ago
    console.say("zenoti-events up: a word of its own")
    console.close()

    assert out.getvalue().splitlines() == [
        "accepted 1  enriched 0  parked 0  waiting for the API budget 1",
        "zenoti-events up: a word of its own",
        "accepted 1  enriched 1  parked 0  waiting for the API budget 0",
    ]


class GoneAfter(io.StringIO):
    """A pipe whose reader leaves after ``writes`` writes (``up | head``)."""

    def __init__(self, writes: int) -> None:
        super().__init__()
        self.left = writes

    def write(self, text: str) -> int:
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= 1
        return super().write(text)


def test_an_output_that_goes_away_is_let_go_without_an_error() -> None:
    out = GoneAfter(writes=2)
    console = Console(out, tty=False)
    console.show(board(Counts(1, 0, 0, 0)))
    console.follow(lines("one", "two", "three")).join(5)
    console.refresh()
    console.say("stopping")
    console.close()  # nothing raised: the events that fit were shown, the rest dropped
    assert out.getvalue().splitlines()[0] == "one"


def test_an_event_cannot_drive_the_terminal() -> None:
    out = io.StringIO()
    console = Console(out, tty=False)
    console.follow(lines("guest \x1b]0;owned\x07 \x1b[2J\x9b31m done\tok")).join(5)
    console.refresh()
    assert out.getvalue() == "guest ?]0;owned? ?[2J?31m done\tok\n"
