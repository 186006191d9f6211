"""Model-file helpers: a planted pickle and a zip rewriter."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path


class PlantedPickle:
    """Unpickling this creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def rezip(data: bytes, method: int, level: int | None = None) -> bytes:
    """The same members, names, times and order, written with another compression."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buffer, "w") as dst:
        for info in src.infolist():
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            copy.compress_type, copy.create_system = method, info.create_system
            copy.external_attr = info.external_attr
            dst.writestr(copy, src.read(info.filename), compresslevel=level)
    return buffer.getvalue()
