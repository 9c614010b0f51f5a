"""Tensor formats and their algebra: symmetric CP (:class:`SymCP`), dense (:class:`DenseSymTensor`),
sample moments (:class:`MomentTensor`) with their corrections, sums of these, the contraction
operators the solvers use, and the conversions to and from NumPy and TensorLy."""
