"""Turning a file into a titled list of blocks, each under its section path, with unstructured doing the parsing.

PDFs take a lean path: pdfminer.six extracts each page's text, which unstructured then partitions, so that
page numbers are known and no layout model or CUDA stack is needed.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup

import penny  # noqa: F401  (sets the offline and no-telemetry environment before unstructured is imported)
from ingest.unpack import ParseFailure, UnpackLimits, check_pdf_streams, check_unpacked_sizes

# Raised whenever a change makes the same file parse into different blocks: caches of parsed corpora key on it.
PARSER_VERSION = 2
SUPPORTED = {
    ".md": "md",
    ".markdown": "md",
    ".txt": "txt",
    ".text": "txt",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}


@dataclass(frozen=True)
class Block:
    text: str
    section: tuple[str, ...]
    page: int | None
    is_table: bool = False


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    doc_type: str
    blocks: list[Block]


def doc_type_of(path: Path) -> str:
    doc_type = SUPPORTED.get(path.suffix.lower())
    if doc_type is None:
        raise ParseFailure("unsupported", f"unsupported file type {path.suffix or '(none)'!r}")
    return doc_type


def parse_bytes(
    path: Path, content: bytes, languages: tuple[str, ...] = ("eng",), unpack: UnpackLimits | None = None
) -> ParsedDocument:
    """Parse `content`, the bytes of `path`. Raises ParseFailure with a reason a person can act on.

    Naming the languages spares unstructured a language detection per element (a quarter of its time).
    `unpack` bounds what a .docx may unpack to (the ingestion job always passes the configured limits)."""
    doc_type = doc_type_of(path)
    if not content.strip():
        raise ParseFailure("empty", "the file is empty")
    if doc_type == "docx" and unpack is not None:
        check_unpacked_sizes(content, unpack)
    if doc_type == "pdf" and unpack is not None:
        check_pdf_streams(content, unpack)
    elements = _PARTITIONERS[doc_type](content, list(languages) or ["auto"])
    blocks = _blocks(elements)
    if not blocks:
        raise ParseFailure("empty", "no text could be extracted from the file")
    title = next((e.text.strip() for e in elements if e.category == "Title" and e.text.strip()), "")
    return ParsedDocument(
        title=title or path.stem.replace("-", " ").replace("_", " "), doc_type=doc_type, blocks=blocks
    )


def _decode_text(content: bytes) -> str:
    if b"\x00" in content[:8192]:
        raise ParseFailure("binary", "the file holds binary data, not text")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return content.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise ParseFailure("binary", f"the file is not text in UTF-8 or Windows-1252 ({exc.reason})") from exc


_MARKDOWN_STRUCTURE = re.compile(r"^(?:#{1,6} \S|```)", re.MULTILINE)  # an ATX heading or a code fence


def _partition_md(content: bytes, languages: list[str]):
    return _partition_markdown(_decode_text(content), languages)


def _partition_markdown(text: str, languages: list[str]):
    from unstructured.partition.md import partition_md

    _skip_narrative_check()
    return partition_md(text=text, languages=languages)


def _partition_txt(content: bytes, languages: list[str]):
    """Plain text, or Markdown saved as .txt (documentation exports often are): unstructured's text partitioner
    classifies every paragraph with NLP and takes a "```yaml" fence line for the title, while the Markdown one
    reads headings and code blocks as written, in ~40% of the CPU time (measured on ocp-4.15's .txt files)."""
    text = _decode_text(content)
    if _MARKDOWN_STRUCTURE.search(text):
        return _partition_markdown(text, languages)
    from unstructured.partition.text import partition_text

    return partition_text(text=text, languages=languages)


def _partition_html(content: bytes, languages: list[str]):
    from unstructured.partition.html import partition_html

    _skip_narrative_check()
    return partition_html(text=_decode_text(content), languages=languages)


def _skip_narrative_check() -> None:
    """unstructured's HTML parser (which Markdown goes through too) runs spaCy's tagger and parser over every
    untagged paragraph only to call it NarrativeText or Text: 78 % of parsing CPU on ocp-4.15's Markdown (cProfile,
    60 files). Penny reads only Title and Table from such documents, and both come from tags (h1-h6, table), so
    that verdict changes no block: every untagged text is taken as narrative. Plain text and PDFs keep the check,
    since there it is what finds titles (tests/test_parse.py compares both ways on real documents)."""
    from unstructured.partition.html import parser

    parser.is_possible_narrative_text = _any_text_is_narrative


def _any_text_is_narrative(text: str, *args, **kwargs) -> bool:
    return True


def _partition_docx(content: bytes, languages: list[str]):
    from unstructured.partition.docx import partition_docx

    if not zipfile.is_zipfile(io.BytesIO(content)):
        if content.startswith(b"\xd0\xcf\x11\xe0"):
            raise ParseFailure("encrypted", "the document is password-protected (or an old .doc): save it unprotected")
        raise ParseFailure("corrupt", "the file is not a valid .docx (not a ZIP container)")
    try:
        return partition_docx(file=io.BytesIO(content), languages=languages)
    except (KeyError, zipfile.BadZipFile, ValueError) as exc:
        raise ParseFailure("corrupt", f"the .docx could not be read: {exc}") from exc


def _partition_pdf(content: bytes, languages: list[str]):
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTTextContainer
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfminer.psexceptions import PSException
    from unstructured.partition.text import partition_text

    elements = []
    try:
        for number, page in enumerate(extract_pages(io.BytesIO(content)), start=1):
            text = "\n".join(item.get_text() for item in page if isinstance(item, LTTextContainer)).strip()
            for element in partition_text(text=text, languages=languages) if text else []:
                element.metadata.page_number = number
                elements.append(element)
    except (PDFPasswordIncorrect, PDFEncryptionError) as exc:
        raise ParseFailure("encrypted", "the PDF is encrypted: provide an unprotected copy") from exc
    except (PDFSyntaxError, PSException, ValueError, TypeError, KeyError) as exc:
        raise ParseFailure("corrupt", f"the PDF could not be read: {type(exc).__name__}: {exc}") from exc
    return elements


_PARTITIONERS = {
    "md": _partition_md,
    "txt": _partition_txt,
    "html": _partition_html,
    "pdf": _partition_pdf,
    "docx": _partition_docx,
}


def _blocks(elements) -> list[Block]:
    """Elements to blocks under their heading path; headings open sections and are not blocks themselves."""
    headings: list[tuple[int, str]] = []
    blocks: list[Block] = []
    heading_is_empty = False
    last_page = None
    for element in elements:
        text = (element.text or "").strip()
        if not text:
            continue
        last_page = element.metadata.page_number
        if element.category == "Title":
            depth = element.metadata.category_depth or 0
            if heading_is_empty and depth <= headings[-1][0]:
                # a heading with nothing under it, not even sub-headings, may be a misread line of text: keep it
                blocks.append(Block(headings[-1][1], tuple(t for _, t in headings[:-1]), element.metadata.page_number))
            headings = [(d, t) for d, t in headings if d < depth] + [(depth, text)]
            heading_is_empty = True
            continue
        heading_is_empty = False
        section = tuple(t for _, t in headings)
        if element.category == "Table":
            text = _table_text(element.metadata.text_as_html) or text
            blocks.append(Block(text, section, element.metadata.page_number, is_table=True))
        else:
            blocks.append(Block(text, section, element.metadata.page_number))
    if heading_is_empty:  # the same for a last heading: a file that is only a heading still says something
        blocks.append(Block(headings[-1][1], tuple(t for _, t in headings[:-1]), last_page))
    return blocks


def _table_text(html: str | None) -> str:
    """A table as pipe-separated rows: keeps the row/column structure that unstructured's flat text loses."""
    if not html:
        return ""
    rows = []
    for row in BeautifulSoup(html, "html.parser").find_all("tr"):
        cells = [cell.get_text(" ", strip=True) for cell in row.find_all(["th", "td"])]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)
