"""`python -m sigwarehouse` is `sigwh`."""

from sigwarehouse.cli import main

main()
