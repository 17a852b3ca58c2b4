"""Quantity syntax shared by every place a user writes a size: ``16Gi`` (powers of 1024), ``16G``
(powers of 1000), an optional trailing ``B``; plain numbers are bytes. Callers word their own
errors; this module only reads the syntax."""

from __future__ import annotations

import math
import re
from decimal import Decimal

SIZE = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*([KMGTP]i?|k)?B?")
SIZE_UNITS = {None: 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
              "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


def size_in_bytes(text: str) -> int | None:
    """Bytes in ``text`` (rounded up), or None when it is not a size."""
    m = SIZE.fullmatch(text.strip())
    if m is None:
        return None
    return math.ceil(Decimal(m.group(1)) * SIZE_UNITS[m.group(2)])
