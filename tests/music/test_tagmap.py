"""Tag values as people write them, normalised: numbers never fail to parse."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from homekeep.music.tagmap import parse_number


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=40))
def test_number_parsing_never_fails(text: str) -> None:
    number, total = parse_number(text)
    assert number is None or 0 < number < 100_000
    assert total is None or 0 < total < 100_000
