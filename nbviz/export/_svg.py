"""Stable ids in matplotlib's SVG output, so the same figure always gives the same bytes.

Matplotlib names clip paths, hatches and markers by a hash of `svg.hashsalt` and their full-
precision coordinates. Constrained layout's solver leaves noise around 1e-13 in those that
varies from one call to the next, invisible in the 6 decimals written but enough to change the
hash (seen about one export in ten). The ids are renamed here in order of first appearance,
after a digest of the document without them, which keeps them unique between figures inlined in
one HTML page, as the salt means them to be.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

# How matplotlib's RendererSVG._make_id names a definition: a type letter and 10 hex digits.
_DEFINITION: Final = re.compile(r'\bid="([phm][0-9a-f]{10})"')


def stable_ids(svg: str, salt: str) -> str:
    """`svg` with its hashed ids (defined by id="..." and referenced as #...) renumbered."""
    found = list(dict.fromkeys(_DEFINITION.findall(svg)))
    if not found:
        return svg
    # Each id is 11 random characters: anywhere it occurs, it is that id.
    token = re.compile(r"\b(" + "|".join(found) + r")\b")
    digest = hashlib.sha256((salt + token.sub("", svg)).encode()).hexdigest()[:8]
    names = {old: f"{old[0]}{digest}-{n}" for n, old in enumerate(found)}
    return token.sub(lambda m: names[m.group(0)], svg)
