"""`python -m mirror.cli`: the same as the `mirror` command."""

from mirror.cli import main

main()
