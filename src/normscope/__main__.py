"""`python -m normscope`."""

from .cli import main

main()
