"""Fast cast kernels: one backend-neutral source per format family.

Every kernel works on the int32 bit patterns of float32 values with integer
operations only (see :mod:`dmxnum.kernels.bits`), which makes it exact on
NumPy, JAX (where float32 subnormals read as zero) and PyTorch alike, eager
and compiled.
"""
