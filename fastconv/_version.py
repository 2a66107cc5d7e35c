"""The single source of fastconv's version number."""

__version__ = "0.1.0.dev0"
