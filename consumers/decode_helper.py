"""The decode helper: a child process of the worker that reads, validates and lays out events.

`python -m consumers.decode_helper` reads frames from stdin and answers each batch on stdout
(frame = 4-byte big-endian length + pickle). A request is `("batch", [raw value, ...])` or
`("schema", writer schema)` (one the worker learned from the schema topic). The answer to a batch
is one entry per value: `(property_id, row)` when the value decodes and validates, else None — the
worker then reads that value itself, so dead-letter reasons, schema learning and a Schema Registry
that is down are handled in one place (consumers/app.py). Settings come from the environment the
worker passes (Settings.to_env), so the helper asks the same Schema Registry.

The helper keeps no state the worker needs: if it dies, the worker reads the batch itself.
"""
from __future__ import annotations

import pickle
import signal
import struct
import sys
from typing import BinaryIO

from consumers.intake import Rejected, read_outcome
from consumers.rows import record_to_row
from schemas.settings import Settings
from schemas.wire import WireCodec

FRAME_LENGTH = struct.Struct(">I")


def encode_frame(message: object) -> bytes:
    """One frame, as both sides of the pipe write it."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME_LENGTH.pack(len(body)) + body


def write_frame(out: BinaryIO, message: object) -> None:
    out.write(encode_frame(message))
    out.flush()


def read_frame(source: BinaryIO) -> object | None:
    """The next message, or None at the end of the stream."""
    header = source.read(FRAME_LENGTH.size)
    if len(header) < FRAME_LENGTH.size:
        return None
    (length,) = FRAME_LENGTH.unpack(header)
    return pickle.loads(source.read(length))


def decode_batch(values: list[bytes | None], wire: WireCodec, max_bytes: int) -> list[tuple[str, tuple] | None]:
    answers: list[tuple[str, tuple] | None] = []
    for value in values:
        outcome = read_outcome(value, wire, max_bytes)
        answers.append(None if isinstance(outcome, Rejected) else (outcome["property_id"], record_to_row(outcome)))
    return answers


def serve(source: BinaryIO, out: BinaryIO, settings: Settings) -> None:
    wire = WireCodec.for_topic(settings, settings.outcomes_topic)
    while (message := read_frame(source)) is not None:
        kind, payload = message
        if kind == "batch":
            write_frame(out, decode_batch(payload, wire, settings.max_message_bytes))
        else:
            wire.register(payload, origin="taught by the worker")


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the worker stops us by closing our stdin
    out = sys.stdout.buffer
    sys.stdout = sys.stderr   # nothing but frames may reach the worker's pipe
    serve(sys.stdin.buffer, out, Settings.from_env())


if __name__ == "__main__":
    main()
