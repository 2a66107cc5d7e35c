"""Typed Cython kernels. They trust their arguments: validate in fastconv's Python layer."""
