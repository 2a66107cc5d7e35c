"""The signature of a call, as a plan cache's key (see :mod:`fastconv._plans`).

Compiled because a small call otherwise spends more time building its key
than the kernel spends computing: here the key of three arrays and eight
arguments takes about 0.2 µs instead of 1.5 µs in Python. This is argument
handling, not a kernel: nothing is validated here, and a key only says that
two calls have the same signature (of an ``out=`` it also checks the two
things a signature cannot say: that it is writeable and shares no byte with
the inputs).

The key is one flat tuple, short because a cache lookup hashes and compares
every item of it, built so that two keys are equal exactly when the calls have
the same structure, types and values:

* an array: its type number and number of dimensions, then its shape (an
  absent one, ``None``, is itself);
* ``None``, an ``int`` or a ``str``: itself (no value of one type equals a
  value of another);
* a ``bool``: one of two markers of this module (``True`` and ``1`` are equal
  in Python and must give different keys);
* a tuple: a marker and its length, then its items, each encoded the same way
  (tuples nested deeper than ``MAX_DEPTH`` have no key: no argument is).

Where each item begins follows from the items before it (the fixed order of
a function's arguments, the dimensions of an array, the length of a tuple),
so equal keys are equal item by item.
"""

cimport numpy as cnp

cnp.import_array()

cdef object _NONE_TYPE = type(None)
cdef object _TRUE = object()  # the markers of the two bools and of a tuple: equal to nothing else
cdef object _FALSE = object()
cdef object _TUPLE = object()
MAX_DEPTH = 4  # tuples in tuples: a pair of pairs (padding) is 2


def call_key(tuple arrays, tuple params, out=None, indices=None):
    """The signature of a call, or None when it has no plan (see :mod:`fastconv._plans`).

    Parameters
    ----------
    arrays : tuple
        The call's array arguments; ``None`` entries (an absent bias) are
        allowed. Each other entry must be exactly an ``ndarray``, C-contiguous,
        aligned, of native-endian float32 or float64, or there is no key.
    params : tuple
        Its other arguments, in a fixed order: each ``None``, ``bool``,
        ``int``, ``str`` or a tuple of these (nested at most ``MAX_DEPTH``
        deep), or there is no key.
    out : ndarray, optional
        The call's ``out=``: keyed as the arrays are, and it must also be
        writeable and share no byte with them (nor with ``indices``), or there
        is no key. Those two depend on the call, not its signature: a read-only
        ``out`` is an error and an input it overlaps must be copied first, both
        for the full path.
    indices : ndarray, optional
        An integer array argument (``max_pool2d_backward``'s indices): keyed
        as the arrays are, but it must be native-endian int64 instead of a
        float.

    Returns
    -------
    tuple or None
    """
    cdef list key = []
    cdef cnp.ndarray a
    cdef char* start
    cdef char* end
    if not _append_arrays(key, arrays, False) or not _append_arrays(key, (indices,), True):
        return None
    if out is None:
        key.append(None)
    else:
        if not _append_arrays(key, (out,), False) or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
            return None
        # C-contiguous arrays (as every keyed one is) hold exactly their nbytes from their data
        start = <char*>cnp.PyArray_DATA(<cnp.ndarray>out)
        end = start + cnp.PyArray_NBYTES(<cnp.ndarray>out)
        for item in arrays + (indices,):
            if item is not None:
                a = <cnp.ndarray>item
                if <char*>cnp.PyArray_DATA(a) < end and start < <char*>cnp.PyArray_DATA(a) + cnp.PyArray_NBYTES(a):
                    return None
    return tuple(key) if _append_params(key, params, MAX_DEPTH + 1) else None


cdef bint _append_arrays(list key, tuple arrays, bint int64) except -1:
    """Append each array's type, dimensions and shape (None for None); False if one cannot be keyed.

    The arrays must be float32 or float64, or with ``int64`` int64.
    """
    cdef cnp.ndarray a
    cdef int d, kind
    cdef bint typed
    for item in arrays:
        if item is None:
            key.append(None)
            continue
        if type(item) is not cnp.ndarray:
            return False
        a = <cnp.ndarray>item
        kind = cnp.PyArray_TYPE(a)
        typed = (kind == cnp.NPY_INT64) if int64 else (kind == cnp.NPY_FLOAT32 or kind == cnp.NPY_FLOAT64)
        if (not typed or not cnp.PyArray_ISNOTSWAPPED(a)
                or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)):
            return False
        key.append(kind)
        key.append(cnp.PyArray_NDIM(a))
        for d in range(cnp.PyArray_NDIM(a)):
            key.append(cnp.PyArray_DIM(a, d))
    return True


cdef bint _append_params(list key, tuple values, int depth) except -1:
    """Append ``values`` as the module docstring says; False if one cannot be a key."""
    if depth < 1:
        return False
    for value in values:
        kind = type(value)
        if kind is int or kind is str or kind is _NONE_TYPE:
            key.append(value)
        elif kind is bool:
            key.append(_TRUE if value else _FALSE)
        elif kind is tuple:
            key.append(_TUPLE)
            key.append(len(<tuple>value))
            if not _append_params(key, <tuple>value, depth - 1):
                return False
        else:
            return False
    return True
