"""Sphinx configuration of the fastconv documentation.

Build (from the repository root, with fastconv installed and
``pip install -r docs/requirements.txt``)::

    sphinx-build -W --keep-going -b html docs docs/_build/html
    sphinx-build -W -b doctest docs docs/_build/doctest

Every build first runs ``docs/make_figures.py`` (figures are never drawn by
hand) and checks that every name in ``fastconv.__all__`` and
``fastconv.reference.__all__`` is documented in ``docs/api/``. Nothing is
fetched from the network: intersphinx is off.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re

import fastconv

DOCS = os.path.dirname(os.path.abspath(__file__))
# docs/make_figures.py fills docs/_static at the start of each build; the folder
# must exist before Sphinx checks html_static_path.
os.makedirs(os.path.join(DOCS, "_static"), exist_ok=True)

# -- fastconv.compat -----------------------------------------------------------------------
#: The drop-in modules ``fastconv.compat.dlfs`` and ``fastconv.compat.cs231n``.
#: While False, the text between ``.. compat-begin`` and ``.. compat-end``
#: comments is cut from every page before it is parsed (their API entries
#: and doctests). Set to True once ``import fastconv.compat.dlfs,
#: fastconv.compat.cs231n`` works.
COMPAT_READY = True

# -- project ----------------------------------------------------------------------------------
project = "fastconv"
author = "The fastconv developers"
copyright = "the fastconv developers"
release = fastconv.__version__
version = ".".join(release.split(".")[:2])

# -- general ----------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "numpydoc",
    "myst_parser",  # Markdown: ../CHANGELOG.md is included with it
]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = []
default_role = "literal"
# Markdown pulled in from the repository root (the changelog) may start at a
# level-2 heading or link to files outside docs/: neither is an error here.
suppress_warnings = ["myst.header", "myst.xref_missing"]

# -- autodoc / autosummary / numpydoc ---------------------------------------------------------
autosummary_generate = False  # the API pages are written by hand: nothing is generated in docs/
autodoc_member_order = "bysource"
autodoc_typehints = "none"
add_module_names = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# -- doctest ----------------------------------------------------------------------------------
# Runs the ``>>>`` blocks of the pages and of the docstrings shown in the API
# reference. torch is optional: blocks that need it are marked
# ``:skipif: torch is None``; blocks that need a parallel build are marked
# ``:skipif: not OPENMP``.
doctest_global_setup = """
import numpy as np
import fastconv
try:
    import torch
except ImportError:
    torch = None
with fastconv.num_threads(2):
    OPENMP = fastconv.get_num_threads() == 2  # False in a serial (FASTCONV_NO_OPENMP=1) build
"""
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1

# -- HTML -------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"fastconv {release}"
html_static_path = ["_static"]
html_show_sourcelink = False


# -- build-time hooks -------------------------------------------------------------------------
def _run_make_figures(app):
    """Draw every figure into ``docs/_static`` with ``docs/make_figures.py``."""
    spec = importlib.util.spec_from_file_location("fastconv_docs_make_figures",
                                                  os.path.join(DOCS, "make_figures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(os.path.join(DOCS, "_static"))


_DOCUMENTED = re.compile(r"^\s*\.\. (?:auto(?:function|class|data|module)|function|data|class)::\s+(\S+)",
                         re.MULTILINE)
_COMPAT_BLOCK = re.compile(r"^\.\. compat-begin\s*$.*?^\.\. compat-end\s*$", re.MULTILINE | re.DOTALL)


def _api_texts():
    folder = os.path.join(DOCS, "api")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".rst"):
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                yield handle.read()


def _check_api_coverage(app):
    """Warn (an error under ``-W``) for a public name that no API page documents."""
    from sphinx.util import logging

    import fastconv.reference

    logger = logging.getLogger("fastconv.docs")
    text = "\n".join(_api_texts())
    if not COMPAT_READY:
        text = _COMPAT_BLOCK.sub("", text)
    documented = set(_DOCUMENTED.findall(text))
    public = [f"fastconv.{name}" for name in fastconv.__all__]
    public += [f"fastconv.reference.{name}" for name in fastconv.reference.__all__]
    if COMPAT_READY:
        import fastconv.compat.cs231n
        import fastconv.compat.dlfs

        for module in (fastconv.compat.dlfs, fastconv.compat.cs231n):
            public += [f"{module.__name__}.{name}" for name in getattr(module, "__all__", ())]
    for name in public:
        if name not in documented:
            logger.warning("%s is public (in __all__) but no page of docs/api/ documents it", name)


_COMPAT_PLACEHOLDER = """
.. note::

   The ``fastconv.compat`` part of this page is left out of this build
   (``COMPAT_READY = False`` in ``docs/conf.py``).
"""


def _cut_compat(app, docname, source):
    """While ``COMPAT_READY`` is False, replace the fastconv.compat parts of a page by a note."""
    if not COMPAT_READY:
        source[0] = _COMPAT_BLOCK.sub(lambda match: _COMPAT_PLACEHOLDER, source[0])


def setup(app):
    app.connect("builder-inited", _run_make_figures)
    app.connect("builder-inited", _check_api_coverage)
    app.connect("source-read", _cut_compat)
    return {"parallel_read_safe": True}
