"""`python -m accord` runs the CLI, so services can be started without the console script."""

from accord.cli import main

main()
