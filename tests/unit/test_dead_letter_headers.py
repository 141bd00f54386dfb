"""Dead letters carry the original headers plus the worker's reason, error and source position; a
producer cannot pass off its own `reason` as the worker's."""
from types import SimpleNamespace

import pytest

from consumers.app import dead_letter_headers
from consumers.intake import Rejected


@pytest.mark.parametrize("headers", [
    [("trace-id", b"abc"), ("reason", b"spoofed"), ("source_offset", b"0")],
    {"trace-id": b"abc", "reason": b"spoofed", "source_offset": b"0"},
])
def test_original_headers_named_like_the_workers_are_renamed(headers):
    message = SimpleNamespace(headers=headers, topic="booking-outcomes", partition=3, offset=41)
    got = dead_letter_headers(message, Rejected("bad_marker", "not Avro single-object encoded"))
    assert got == [("trace-id", b"abc"), ("original.reason", b"spoofed"), ("original.source_offset", b"0"),
                   ("reason", b"bad_marker"), ("error", b"not Avro single-object encoded"),
                   ("source_topic", b"booking-outcomes"), ("source_partition", b"3"), ("source_offset", b"41")]
    assert [v for k, v in got if k == "reason"] == [b"bad_marker"]


def test_a_message_without_headers_gets_only_the_workers():
    message = SimpleNamespace(headers=None, topic="t", partition=0, offset=7)
    got = dict(dead_letter_headers(message, Rejected("null_value", "tombstone")))
    assert got == {"reason": b"null_value", "error": b"tombstone", "source_topic": b"t",
                   "source_partition": b"0", "source_offset": b"7"}
