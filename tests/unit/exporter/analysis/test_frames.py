from __future__ import annotations

from exporter.analysis.frames import CapturedExchange, FrameReader, encode_frame


def test_frames_split_across_arbitrary_reads_come_back_whole_and_in_order() -> None:
    items = [
        CapturedExchange(
            float(i), f"id-{i}", "POST", "/p", b"q=1", "v2", "m", None,
            [(b"a", b"b")], bytes(range(256)) * i, 200, [], b"{}", 0.5,
        )
        for i in range(20)
    ]  # fmt: skip
    stream = b"".join(item.frame() for item in items)
    reader = FrameReader()
    out: list[CapturedExchange] = []
    for start in range(0, len(stream), 997):  # a prime: frames straddle reads
        out.extend(CapturedExchange(*fields) for fields in reader.feed(stream[start : start + 997]))
    assert out == items


def test_any_picklable_message_is_framed() -> None:
    reader = FrameReader()
    assert reader.feed(encode_frame(("version", "m", "3"))) == [("version", "m", "3")]
    assert reader.feed(b"") == []
