"""PubMed/MEDLINE XML (the annual baseline and the daily update files) as tagging records.

A document is the PMID, `ArticleTitle` and every `Abstract/AbstractText` of a `PubmedArticle` (for a
`PubmedBookArticle`: BookDocument's PMID, ArticleTitle or else Book/BookTitle, and Abstract). A section of a
structured abstract starts with its label as PubTator writes it: `BACKGROUND: ...` (the label is also kept
in `Passage.label`). Inline markup (`<i>`, `<sup>`, MathML...) becomes its text, character references are
decoded, and runs of XML whitespace become one space. `<DeleteCitation>` becomes a `Deleted` record.

The file is parsed as a stream (a baseline file holds ~30k articles; each is cleared once read) and never
fetches a DTD or resolves an entity: an article that refers to an entity (`&x;`, whatever it was declared
as) is a BadRecord, so a file's `<!ENTITY x SYSTEM "file:///...">` never brings another file into the
output. `huge_tree` stays off: it would lift libxml2's guards against entity expansion bombs, and no
PubMed text node comes near its 10 MB limit. Parsing never guesses (`recover=False`): where the XML stops
being well-formed, the records read so far have been yielded and a ShardError names the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from ner.tagging.inputs import (
    READ_ERRORS,
    BadRecord,
    Deleted,
    Document,
    Record,
    ShardError,
    chain_passages,
    id_problem,
    open_shard,
)

ROOT = "PubmedArticleSet"
PARSER_OPTIONS = dict(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    recover=False,
    remove_comments=True,
    remove_pis=True,
)
CHUNK_BYTES = 1 << 16  # what one read feeds the parser
XML_SPACE = re.compile(r"[ \t\r\n]+")


def read_pubmed(path: Path) -> Iterator[Record]:
    """The records of one PubMed XML file in file order: Document, Deleted or BadRecord."""
    with open_shard(path) as handle:
        depth = count = 0
        # a pull parser fed by us, not iterparse: lxml 6.2's iterparse drops the events it parsed before a
        # syntax error in the same read, where the parser keeps them (tests/test_tag_inputs.py)
        parser = etree.XMLPullParser(events=("start", "end"), **PARSER_OPTIONS)
        syntax_error = None
        while syntax_error is None:
            try:
                chunk = handle.read(CHUNK_BYTES)
            except READ_ERRORS as error:
                raise ShardError(path, f"cannot be read after {count} records ({error})") from None
            try:
                if chunk:
                    parser.feed(chunk)
                else:
                    parser.close()
            except etree.XMLSyntaxError as error:
                syntax_error = error  # the events before it are still queued: yield their records first
            for event, element in parser.read_events():
                if event == "start":
                    depth += 1
                    if depth == 1 and element.tag != ROOT:
                        raise ShardError(path, f"not PubMed XML: root <{element.tag}>, expected <{ROOT}>")
                    continue
                depth -= 1
                if depth != 1:  # inside an article: read when the article ends
                    continue
                count += 1
                yield parse_record(element, f"{path}: article {count} (line {element.sourceline})")
                element.clear()  # keep memory flat: drop the article and what came before it
                while element.getprevious() is not None:
                    del element.getparent()[0]
            if not chunk:
                break
        if syntax_error is not None:
            raise ShardError(path, f"not well-formed XML ({syntax_error.msg})", syntax_error.lineno)


def parse_record(element: etree._Element, where: str) -> Record:
    """One child of <PubmedArticleSet>."""
    if element.tag == "DeleteCitation":
        ids = tuple(text for pmid in element.iter("PMID") if (text := _text(pmid)))
        return Deleted(ids) if ids else BadRecord(None, where, "a DeleteCitation without PMIDs")
    if element.tag == "PubmedArticle":
        body = element.find("MedlineCitation")
        article = body.find("Article") if body is not None else None
        title = article.find("ArticleTitle") if article is not None else None
    elif element.tag == "PubmedBookArticle":
        body = article = element.find("BookDocument")
        title = _first(body, "ArticleTitle", "Book/BookTitle")
    else:
        expected = "PubmedArticle, PubmedBookArticle or DeleteCitation"
        return BadRecord(None, where, f"unexpected element <{element.tag}> (expected {expected})")
    pmid_element = body.find("PMID") if body is not None else None
    pmid = _text(pmid_element) if pmid_element is not None else ""
    if not pmid:
        return BadRecord(None, where, f"a {element.tag} without a PMID")
    if id_problem(pmid):
        return BadRecord(None, where, f"PMID {pmid!r} {id_problem(pmid)}")
    sections = article.findall("Abstract/AbstractText") if article is not None else []
    for part in ([title] if title is not None else []) + sections:
        entity = next(part.iter(etree.Entity), None)
        if entity is not None:
            reason = f"refers to the entity {entity.text} in <{part.tag}>: entities are never resolved"
            return BadRecord(pmid, where, reason)
    parts = [("title", _text(title) if title is not None else "", None)]
    for section in sections:
        text, label = _text(section), (section.get("Label") or "").strip() or None
        if text:  # an empty section has nothing to tag
            parts.append(("abstract", f"{label}: {text}" if label else text, label))
    if not parts[0][1] and len(parts) == 1:
        return BadRecord(pmid, where, "empty document: no title and no abstract")
    return Document(pmid, chain_passages(parts))


def _first(element: etree._Element | None, *paths: str) -> etree._Element | None:
    # explicit None tests: an element without children is falsy
    for path in paths:
        found = element.find(path) if element is not None else None
        if found is not None:
            return found
    return None


def _text(element: etree._Element) -> str:
    """All text inside `element`, markup removed, XML whitespace runs collapsed."""
    return XML_SPACE.sub(" ", "".join(element.itertext())).strip()
