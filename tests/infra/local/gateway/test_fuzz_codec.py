"""Codec fuzzing: garbage in never crashes the sans-I/O codec.

The codec gets random byte streams and mutated valid packets in random chunkings: it returns
packets or raises MalformedPacket, nothing else, and valid streams round-trip whatever the
chunking. Every hypothesis run is derandomized and database-free.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from infra.local.gateway.codec import (
    Connect,
    MalformedPacket,
    Packet,
    PacketReader,
    encode,
)
from tests.infra.local.gateway import mqtt_packets as gen


def feed_all(chunks: list[bytes], version: int) -> tuple[list[Packet], MalformedPacket | None]:
    """Feed chunks to a fresh reader; any exception but MalformedPacket propagates (and fails)."""
    reader = PacketReader(version=version)
    got: list[Packet] = []
    for piece in chunks:
        try:
            got += reader.feed(piece)
        except MalformedPacket as exc:
            return got, exc
    return got, None


# --------------------------------------------------------------------------- codec fuzzing


@settings(gen.FUZZ, max_examples=3000)
@given(gen.versions, st.binary(max_size=200), gen.chunkings)
def test_random_bytes_only_ever_raise_malformed_packet(version, data, sizes):
    chunked, chunked_error = feed_all(gen.chunk(data, sizes), version)
    single, single_error = feed_all([bytes([b]) for b in data], version)
    # Framing does not depend on how the bytes arrive.
    assert (chunked_error is None) == (single_error is None)
    if chunked_error is None:
        assert chunked == single
    else:
        assert isinstance(chunked_error.reason_code, int) and chunked_error.reason_code >= 0x80
        assert single[: len(chunked)] == chunked


@settings(gen.FUZZ, max_examples=3500)
@given(
    gen.versions.flatmap(
        lambda v: st.tuples(st.just(v), st.lists(gen.packets(v), min_size=1, max_size=3))
    ),
    gen.mutations,
    gen.chunkings,
)
def test_mutated_valid_packets_only_ever_raise_malformed_packet(case, ops, sizes):
    version, items = case
    data = gen.mutate(gen.encode_stream(version, items), ops)
    got, error = feed_all(gen.chunk(data, sizes), version)
    if error is not None:
        assert error.reason_code >= 0x80
    for packet in got:
        # Whatever decoded is a well-formed packet again: it re-encodes and decodes the same.
        level = packet.protocol_level if isinstance(packet, Connect) else version
        assert PacketReader(version=level).feed(encode(packet, level)) == [packet]


@settings(gen.FUZZ, max_examples=2000)
@given(
    gen.versions.flatmap(
        lambda v: st.tuples(st.just(v), st.lists(gen.packets(v), min_size=1, max_size=5))
    ),
    gen.chunkings,
)
def test_valid_streams_round_trip_in_any_chunking(case, sizes):
    version, items = case
    got, error = feed_all(gen.chunk(gen.encode_stream(version, items), sizes), version)
    assert error is None
    assert got == items
