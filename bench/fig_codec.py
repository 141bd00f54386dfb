"""Figure 7: bookloop's codec (single-object header + fingerprint lookup) vs plain fastavro
schemaless on the same records."""
from __future__ import annotations

import time
from io import BytesIO

from fastavro import schemaless_reader, schemaless_writer

from bench.records import real_outcomes
from bench.report import Figure
from schemas.codec import HEADER_SIZE, default_codec

SAMPLE = 30_000
ROUNDS = 3   # best of, alternating codec and baseline


def _best_rate(fn, items: list) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        fn(items)
        best = min(best, time.perf_counter() - started)
    return len(items) / best


def measure() -> Figure:
    codec = default_codec()
    schema = codec._current_schema("bookloop.BookingOutcome").parsed
    records = list(real_outcomes()[:SAMPLE])

    def plain_encode(items):
        out = []
        for record in items:
            buf = BytesIO()
            schemaless_writer(buf, schema, record)
            out.append(buf.getvalue())
        return out

    def plain_decode(items):
        return [schemaless_reader(BytesIO(body), schema, None) for body in items]

    def ours_decode(items):
        return [codec.decode(message) for message in items]

    messages = [codec.encode(r) for r in records]
    bodies = [m[HEADER_SIZE:] for m in messages]
    rates = {}
    for _ in range(2):   # interleave so drift of the machine hits both sides alike
        rates.setdefault("enc", []).append(_best_rate(lambda items: [codec.encode(r) for r in items], records))
        rates.setdefault("enc_base", []).append(_best_rate(plain_encode, records))
        rates.setdefault("dec", []).append(_best_rate(ours_decode, messages))
        rates.setdefault("dec_base", []).append(_best_rate(plain_decode, bodies))
    enc, enc_base, dec, dec_base = (max(rates[k]) for k in ("enc", "enc_base", "dec", "dec_base"))
    enc_ratio, dec_ratio = enc / enc_base, dec / dec_base
    target = "≥ 0.9× fastavro (header costs < 10 %)"
    worse = (enc, enc_base, enc_ratio) if enc_ratio <= dec_ratio else (dec, dec_base, dec_ratio)
    return Figure(
        7, "codec encode+decode vs plain fastavro", value=worse[0], unit="ev/s",
        baseline=worse[1], ratio=worse[2], target=target,
        passed=enc_ratio >= 0.9 and dec_ratio >= 0.9,
        note=f"best of {ROUNDS}×2 timed passes over {len(records):,} real records; the row is the worse "
             "ratio of encode and decode",
        details=[
            {"name": "encode", "value": enc, "unit": "ev/s", "baseline": enc_base, "ratio": enc_ratio,
             "target": "≥ 0.9×", "pass": enc_ratio >= 0.9},
            {"name": "decode", "value": dec, "unit": "ev/s", "baseline": dec_base, "ratio": dec_ratio,
             "target": "≥ 0.9×", "pass": dec_ratio >= 0.9},
        ])
