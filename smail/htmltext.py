"""An HTML body -> its plain-text alternative: paragraphs, line breaks, lists, links kept."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final


class _TextExtractor(HTMLParser):
    """A readable plain-text version of an HTML body: paragraphs, line breaks, links."""

    BLOCKS: Final = frozenset({"p", "div", "table", "tr", "ul", "ol", "h1", "h2", "h3", "h4",
                               "h5", "h6", "blockquote", "pre", "section", "article",
                               "header", "footer", "hr", "address"})
    SKIP: Final = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0
        self.links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in self.BLOCKS:
            self.out.append("\n\n")
            if tag == "pre":
                self.pre += 1
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append("\t")
        elif tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.out.append("\n\n")
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href and not href.lower().startswith(("cid:", "javascript:", "#")):
                target = href[7:] if href.lower().startswith("mailto:") else href
                self.out.append(f" <{target}>")

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        """`<![` not followed by a name (`<![ x [`) is text: html.parser raises AssertionError
        on it, and an odd HTML body must still give its plain-text part, not a crash."""
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            self.handle_data(self.rawdata[i:i + 3])
            return i + 3

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        self.out.append(data if self.pre else re.sub(r"\s+", " ", data))

    def text(self) -> str:
        joined = "".join(self.out)
        lines = [line.strip(" ") for line in joined.split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    if parser.rawdata.startswith("<") and parser.rawdata not in ("<", "</"):
        # A tag, comment or declaration the body never ends runs to its end: HTML drops it
        # there (so the recipient's HTML view shows nothing of it either). html.parser's
        # close() would try every later `<` of it again, one after another: a body of many
        # unended tags took hours.
        parser.rawdata = ""
    parser.close()
    return parser.text()
