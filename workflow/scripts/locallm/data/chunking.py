"""Chunking: cut a text into passages of at most a number of characters, at the coarsest
boundaries that fit (paragraphs, then sentences, then words).
"""

from __future__ import annotations

import re

PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
WHITESPACE = re.compile(r"\s+")


def _pack(pieces: list[str], sep: str, limit: int) -> list[str]:
    """Join consecutive pieces (each at most `limit`) into chunks of at most `limit`."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(sep) + len(piece) <= limit:
            current += sep + piece
        else:
            if current:
                chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


# From coarse to fine: paragraphs joined by a blank line, then sentences, then words.
_SPLITTERS = ((PARAGRAPH_BREAK, "\n\n"), (SENTENCE_END, " "), (WHITESPACE, " "))


def _split_to_fit(piece: str, limit: int, level: int) -> list[str]:
    """Cut `piece` at the coarsest boundaries that make every part fit, and pack the parts."""
    if len(piece) <= limit:
        return [piece]
    if level == len(_SPLITTERS):
        # A single word longer than the limit: cut it by characters.
        return [piece[i : i + limit] for i in range(0, len(piece), limit)]
    pattern, sep = _SPLITTERS[level]
    parts = [p.strip() for p in pattern.split(piece)]
    fitted = [f for p in parts if p for f in _split_to_fit(p, limit, level + 1)]
    return _pack(fitted, sep, limit)


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Paragraph-bounded chunks of at most `max_chars` characters (0: the text whole)."""
    if max_chars <= 0 or len(text) <= max_chars:
        return [text]
    return _split_to_fit(text.strip(), max_chars, 0)
