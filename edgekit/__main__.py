"""``python -m edgekit``: the same command line as the ``edgekit`` script.

Useful where the console script is not on PATH (a venv not activated, a
``pip install --user`` on a Pi whose ~/.local/bin is not on PATH).
"""
from edgekit.cli import app

if __name__ == "__main__":
    # Without prog_name the usage line would read "python -m edgekit" as "__main__.py".
    app(prog_name="edgekit")
