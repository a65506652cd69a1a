"""Text that goes out — to a page, JSON, a mail, a store, an HTTP answer —
made encodable.

A job's output, an error or a name may hold lone surrogates (Python's
``surrogateescape`` makes them of bytes that are not UTF-8): UTF-8 cannot
encode them, and every writer downstream would raise. They are written
as their escape instead, the six characters ``\\udcff`` for U+DCFF.
"""

from __future__ import annotations

__all__ = ['encodable']


def encodable(text: str) -> str:
    """``text``, with what UTF-8 cannot encode written as an escape."""
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        return text.encode('utf-8', 'backslashreplace').decode('utf-8')
    return text
