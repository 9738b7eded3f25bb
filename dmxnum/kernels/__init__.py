"""Cast kernels: one module per format family, each listing its named paths.

``families`` maps format classes to family modules (``xp``, ``fp``, ``bfp``,
``mxint``, ``mxfp``, ``sbfp``) and chooses a path per cast (``paths``);
``rules`` holds the SPEC's block rules, ``guards`` the run-time guards of
XLA's guarded paths; ``bitfields`` (the exact integer pipeline on float32
bit patterns), ``float_ops``, ``fp_pattern``, ``fp_quantum`` and
``blocking`` are the building blocks. See ``docs/kernels.md``.
"""
