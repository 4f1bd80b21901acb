"""`python -m normscope.cli`: the full command line."""

from normscope.cli import main

main()
