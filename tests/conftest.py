"""Test-wide settings.

``scripts/mutation.py`` sets ``FLATVIEW_MUTATION=1`` in its scratch copies: every mutant
runs the tests that reach it, so hypothesis there draws the same examples every time
(a mutant's verdict must not depend on the draw, nor on examples a database kept from an
earlier mutant) and fewer of them (see ``tests/test_flatten_properties.py``).
"""

from __future__ import annotations

import os

from hypothesis import settings

MUTATION = os.environ.get("FLATVIEW_MUTATION") == "1"

settings.register_profile("mutation", derandomize=True, database=None)
if MUTATION:
    settings.load_profile("mutation")
