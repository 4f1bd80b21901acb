"""normscope's version, in one module at the bottom of the layers (a test holds it equal to
pyproject.toml's)."""

__version__ = "0.1.0"
