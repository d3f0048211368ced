"""``python -m churnclv`` (and ``spark-submit .../churnclv/__main__.py``) run the CLI."""

from churnclv.cli import _entry

if __name__ == "__main__":
    _entry()
