"""Market-data files: bundled samples (``builtin:NAME``) and user CSVs."""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Optional

BUILTIN = "builtin:"


def builtin_names() -> list[str]:
    """Names of the bundled candle and funding files (without .csv)."""
    out = []
    for sub in ("candles", "funding"):
        folder = resources.files("gridctl") / "data" / sub
        if folder.is_dir():
            out += [p.name[:-4] for p in folder.iterdir() if p.name.endswith(".csv")]
    return sorted(out)


def resolve(spec: str, base_dir: Path) -> Path:
    """The file a feed spec names: ``builtin:NAME`` or a path relative to the config file."""
    if spec.startswith(BUILTIN):
        name = spec[len(BUILTIN):]
        for sub in ("candles", "funding"):
            p = resources.files("gridctl") / "data" / sub / f"{name}.csv"
            if p.is_file():
                return Path(str(p))
        return Path(f"<builtin {name}>")
    p = Path(spec).expanduser()
    return p if p.is_absolute() else base_dir / p


def first_price(path: Path) -> Optional[Decimal]:
    """The open of the first candle in a ``timestamp_ms,open,high,low,close,volume`` CSV."""
    try:
        with open(path) as fh:
            fh.readline()
            first = fh.readline().split(",")
        return Decimal(first[1])
    except (OSError, IndexError, ArithmeticError, ValueError):
        return None
