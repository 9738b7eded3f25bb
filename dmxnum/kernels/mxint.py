"""The MXINT family ``MXINT{n}{b,d}``: cast exactly as ``BFP[n|8]{b,d}(SN)``.

Its paths are the BFP family's (:mod:`.bfp`), renamed ``mxint.*``; this is
the one place where the kernels turn an MXINT format into its BFP twin.
"""

from __future__ import annotations

from . import bfp
from .paths import derived

PATHS = derived("mxint", bfp.PATHS, lambda fmt: fmt.as_bfp)
