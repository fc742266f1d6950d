"""One reader per source format, behind one interface (``Reader``); the formats are declared in
``producer/formats.py``."""

from producer.readers.base import RawRecord, Reader

__all__ = ["RawRecord", "Reader"]
