"""One reader per source format, behind one interface (``Reader``)."""

from producer.readers.base import RawRecord, Reader, reader_for

__all__ = ["RawRecord", "Reader", "reader_for"]
