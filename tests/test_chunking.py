"""Chunking: passages within the limit, cut at the coarsest boundary that fits."""

import pytest
from locallm.data.chunking import chunk_text

PARAGRAPHS = [
    "Short one.",
    "A medium paragraph that says a little more than the first one does.",
    "Tiny.",
    "This is a long paragraph. It has several sentences! Does it fit? It does not fit in "
    "forty characters at all, so it is cut at sentence ends first and then at words.",
    "Supercalifragilisticexpialidociousandevenlongerwordthanthelimit ends it.",
]
DOCUMENT = "\n\n".join(PARAGRAPHS)


def squash(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("limit", [20, 40, 80, 200])
def test_no_chunk_is_longer_than_the_limit(limit):
    assert max(len(c) for c in chunk_text(DOCUMENT, limit)) <= limit


@pytest.mark.parametrize("limit", [20, 40, 80, 200])
def test_chunking_preserves_text_modulo_whitespace(limit):
    assert squash("".join(chunk_text(DOCUMENT, limit))) == squash(DOCUMENT)


def test_paragraphs_that_fit_stay_whole_and_are_packed_greedily():
    chunks = chunk_text(DOCUMENT, 75)
    assert chunks[0] == "Short one."  # the next paragraph (68 characters) does not fit beside it
    assert chunks[1] == PARAGRAPHS[1] + "\n\nTiny."
    for paragraph in PARAGRAPHS[:3]:
        assert sum(paragraph in c for c in chunks) == 1


def test_long_paragraph_is_cut_at_sentence_ends():
    chunks = chunk_text(PARAGRAPHS[3], 60)
    assert chunks[0] == "This is a long paragraph. It has several sentences!"


def test_chunk_chars_zero_keeps_the_document_whole():
    assert chunk_text(DOCUMENT, 0) == [DOCUMENT]
