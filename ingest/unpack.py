"""Refusing decompression bombs before a parser unpacks them: a .docx by the sizes its ZIP directory declares, a
PDF by decoding each stream's filters in bounded steps and keeping nothing (pdfminer decodes a stream whole, in
memory, so a 50 KB page could otherwise take gigabytes)."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass


class ParseFailure(Exception):
    """A file that cannot be ingested; `kind` is one of: unsupported, unreadable, too_large, empty, binary,
    corrupt, encrypted, outside_root, not_a_file, decompression_bomb, too_many_chunks."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class UnpackLimits:
    """How far a compressed file (a .docx's parts, a PDF's streams) may unpack before it is refused."""

    max_bytes: int  # all members (or streams) together
    max_ratio: float  # unpacked / packed size of any member larger than RATIO_FLOOR unpacked


RATIO_FLOOR = 1024 * 1024  # small members may compress very well (a repeated style) and cost nothing
_STEP = 1 << 20  # the most any decoding stage hands on at a time


def check_unpacked_sizes(content: bytes, limits: UnpackLimits) -> None:
    """Refuse a ZIP whose members would unpack too far, from the sizes its directory declares, before reading any:
    zipfile never unpacks a member past its declared size, so the declared sizes bound what parsing can unpack."""
    try:
        members = zipfile.ZipFile(io.BytesIO(content)).infolist()
    except zipfile.BadZipFile:
        return  # not a ZIP at all: the partitioner says so
    total = sum(member.file_size for member in members)
    if total > limits.max_bytes:
        raise ParseFailure(
            "too_large",
            f"it unpacks to {total:,} bytes, over the limit of {limits.max_bytes:,} (PENNY_MAX_UNPACKED_BYTES)",
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_FLOOR and ratio > limits.max_ratio:
            raise ParseFailure(
                "decompression_bomb",
                f"its part {member.filename} unpacks to {member.file_size:,} bytes, {ratio:,.0f} times its packed "
                f"size, over the limit of {limits.max_ratio:g} (PENNY_MAX_COMPRESSION_RATIO)",
            )


def check_pdf_streams(content: bytes, limits: UnpackLimits) -> None:
    """Refuse a PDF whose streams would decode too far. Images are not counted (text extraction never decodes
    them); a PDF this cannot read is left to the partitioner to judge.

    Opening the document already makes pdfminer decode its cross-reference streams (and, when the cross-reference
    is broken, every object stream), so it is opened through a parser whose streams check themselves first."""
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdftypes import PDFStream, resolve1
    from pdfminer.psparser import LIT

    try:
        document = PDFDocument(_checking_parser(content, limits))
        streams = [
            stream
            for stream in _direct_objects(document)
            if isinstance(stream, PDFStream) and resolve1(stream.get("Subtype")) is not LIT("Image")
        ]
    except ParseFailure:
        raise
    except Exception:  # unreadable, encrypted, broken: the partitioner gives the reason
        return
    total = 0
    for stream in streams:
        total += _checked_size(stream, limits, limits.max_bytes - total)
        if total > limits.max_bytes:
            raise ParseFailure(
                "too_large", f"its streams decode to over {limits.max_bytes:,} bytes (PENNY_MAX_UNPACKED_BYTES)"
            )


def _checked_size(stream, limits: UnpackLimits, budget: int) -> int:
    """How far `stream`'s filters decode it, counted up to just past `budget`; a stream decoding to more than the
    allowed ratio of its packed size is refused."""
    raw = stream.rawdata or b""
    if stream.decipher and stream.objid is not None and stream.genno is not None:
        raw = stream.decipher(stream.objid, stream.genno, raw, stream.attrs)
    ratio_cap = max(RATIO_FLOOR, int(limits.max_ratio * len(raw)))
    size = _decoded_size(raw, stream.get_filters(), min(budget, ratio_cap) + 1)
    if size > ratio_cap:
        raise ParseFailure(
            "decompression_bomb",
            f"its stream {stream.objid} decodes to over {ratio_cap:,} bytes, more than "
            f"{limits.max_ratio:g} times its packed size (PENNY_MAX_COMPRESSION_RATIO)",
        )
    return size


def _checking_parser(content: bytes, limits: UnpackLimits):
    """pdfminer's parser, but every stream it reads is checked by `_checked_size` before pdfminer decodes it."""
    from pdfminer.pdfparser import PDFParser
    from pdfminer.pdftypes import PDFStream

    class CheckedStream(PDFStream):
        def decode(self) -> None:
            if _checked_size(self, limits, limits.max_bytes) > limits.max_bytes:
                raise ParseFailure(
                    "too_large", f"a stream decodes to over {limits.max_bytes:,} bytes (PENNY_MAX_UNPACKED_BYTES)"
                )
            super().decode()

    class CheckingParser(PDFParser):
        def do_keyword(self, pos, token) -> None:
            super().do_keyword(pos, token)
            if token is self.KEYWORD_STREAM and self.curstack and isinstance(self.curstack[-1][1], PDFStream):
                at, read = self.curstack[-1]
                self.curstack[-1] = (at, CheckedStream(read.attrs, read.rawdata, read.decipher))

    return CheckingParser(io.BytesIO(content))


def _direct_objects(document):
    """The objects stored in the file itself: those inside object streams are skipped, since reading them makes
    pdfminer decode their object stream whole (and that stream is one of the direct objects checked)."""
    for xref in document.xrefs:
        for objid in xref.get_objids():
            try:
                stream_id, _, _ = xref.get_pos(objid)
                if stream_id is None:
                    yield document.getobj(objid)
            except Exception:  # one broken object hides nothing else: the rest are still checked
                continue


Stage = Callable[[Iterator[bytes], int], Iterator[bytes]]


class _OverLimit(Exception):
    pass


class _Meter:
    """The largest output of any one stage: pdfminer holds each stage's output whole while it makes the next."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.largest = 0

    def count(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        size = 0
        for chunk in chunks:
            size += len(chunk)
            self.largest = max(self.largest, size)
            if size > self.limit:
                raise _OverLimit
            yield chunk


def _decoded_size(data: bytes, filters: Iterable[tuple[object, object]], limit: int) -> int:
    """How many bytes pdfminer would hold at most while applying `filters` to `data` in order, counted up to just
    past `limit`. Each stage hands the next its output a piece at a time, and a stage that needs its input whole
    gets at most `limit` bytes of it, so no more than about `limit` bytes are ever held here. Predictors are left
    out: they never make data longer."""
    meter = _Meter(limit)
    chunks: Iterator[bytes] = iter([data])
    for name, params in filters:
        stage = _stage(name, params)
        if stage is None:  # a filter pdfminer refuses to decode: it stops there too
            break
        chunks = meter.count(stage(chunks, limit))
    try:
        for _ in chunks:
            pass
    except _OverLimit:
        return limit + 1
    except (zlib.error, ValueError):  # invalid coded data decodes, in pdfminer too, to what came before the error
        pass
    return max(meter.largest, len(data))  # a stream with no filter is held as it is


def _stage(name, params) -> Stage | None:
    from pdfminer import pdftypes as pdf

    if name in pdf.LITERALS_FLATE_DECODE:
        return _inflating
    if name in pdf.LITERALS_LZW_DECODE:
        return _lzw_decoding
    if name in pdf.LITERALS_ASCII85_DECODE:
        return lambda chunks, limit: iter([pdf.ascii85decode(_joined(chunks, limit))])
    if name in pdf.LITERALS_ASCIIHEX_DECODE:
        return lambda chunks, limit: iter([pdf.asciihexdecode(_joined(chunks, limit))])
    if name in pdf.LITERALS_RUNLENGTH_DECODE:
        return lambda chunks, limit: _run_length_decoding(_joined(chunks, limit))
    if name in pdf.LITERALS_CCITTFAX_DECODE and isinstance(params, dict) and params.get("K") == -1:
        return lambda chunks, limit: _fax_bound(_joined(chunks, limit), params)
    if name in (*pdf.LITERALS_DCT_DECODE, *pdf.LITERALS_JBIG2_DECODE, *pdf.LITERALS_JPX_DECODE):
        return lambda chunks, limit: chunks  # pdfminer hands image codecs' data on as it is
    return None


def _joined(chunks: Iterator[bytes], limit: int) -> bytes:
    """The stage's input whole, cut just past `limit`: whatever decodes from more would be over the limit anyway."""
    kept, size = [], 0
    for chunk in chunks:
        kept.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(kept)[: limit + 1]


def _inflating(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj()
    for chunk in chunks:
        pending = chunk
        while pending and not inflater.eof:
            yield inflater.decompress(pending, _STEP)
            pending = inflater.unconsumed_tail


def _lzw_decoding(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    from pdfminer.lzw import LZWDecoder

    return LZWDecoder(io.BytesIO(_joined(chunks, limit))).run()  # yields one code's string at a time


def _run_length_decoding(data: bytes) -> Iterator[bytes]:
    """PDF's RunLengthDecode a run at a time (pdfminer's `rldecode` builds the whole output): a length byte n < 128
    copies the next n + 1 bytes, n > 128 repeats the next byte 257 - n times, and 128 ends the data."""
    at = 0
    while at < len(data) and data[at] != 128:
        length = data[at]
        if length < 128:
            yield data[at + 1 : at + 2 + length]
            at += 2 + length
        else:
            yield data[at + 1 : at + 2] * (257 - length)
            at += 2


def _fax_bound(data: bytes, params: dict) -> Iterator[bytes]:
    """As many zero bytes as fax (CCITT group 4) coding can make of `data`: each row, at least one bit of input
    (one byte when rows are byte-aligned), becomes a row of `Columns` bits. Text streams are never fax-coded, so
    a bound serves to refuse the rare one that claims to be; the data is not decoded."""
    columns = params.get("Columns", 1728)
    columns = columns if isinstance(columns, int) and columns > 0 else 1728
    rows = len(data) * (1 if params.get("EncodedByteAlign") else 8)
    remaining = rows * ((columns + 7) // 8)
    while remaining > 0:
        piece = min(remaining, _STEP)
        yield bytes(piece)
        remaining -= piece
