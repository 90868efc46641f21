"""`python -m evsim`: the `evsim` command, where no console script is installed (or its shebang is stale)."""
from evsim.cli.main import main

if __name__ == "__main__":
    main(prog_name="evsim")
