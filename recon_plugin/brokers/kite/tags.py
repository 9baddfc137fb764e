"""Local order ids as Kite tags, and the tag rule Kite enforces.

Kite accepts a ``tag`` of at most 20 characters, letters and digits only. The host's local order ids
(the tag is how the ``submit-confirmed`` rule finds an order whose submit never returned an id) may be
longer or contain ``-``, so they are mapped:

- an id that already is a valid tag is sent unchanged (what a person reads in Kite's order book is
  then the id they know);
- any other id is sent as ``h`` followed by the first 19 base-62 digits of the SHA-256 of the id: 113
  bits, so two different ids share a tag with probability about 2^-113 per pair (for a billion ids,
  under 10^-16 in all). Such a tag never equals an unchanged id of another order unless that id is
  itself 20 characters starting with ``h`` and equal to the digest: the same odds.

The mapping is a pure function, the same in every process and after every restart, so the reconciler
finds an order by the tag its id maps to (``order_tag``), whatever was running when it was sent.
"""

from __future__ import annotations

import hashlib
import re

TAG_MAX_LENGTH = 20
VALID_TAG = re.compile(r"[A-Za-z0-9]{1,20}")
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HASHED_PREFIX = "h"


def is_valid_tag(tag: str) -> bool:
    """Whether Kite accepts ``tag``: 1 to 20 letters and digits."""
    return VALID_TAG.fullmatch(tag) is not None


def order_tag(order_id: str) -> str:
    """The Kite tag for the local order id ``order_id`` (see the module's docstring)."""
    if is_valid_tag(order_id):
        return order_id
    number = int.from_bytes(hashlib.sha256(order_id.encode()).digest(), "big")
    digits = []
    for _ in range(TAG_MAX_LENGTH - len(_HASHED_PREFIX)):
        number, digit = divmod(number, len(_DIGITS))
        digits.append(_DIGITS[digit])
    return _HASHED_PREFIX + "".join(digits)
