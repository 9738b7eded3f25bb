"""``python -m dmxnum.formats``: print the format catalogue as a Markdown table."""

from .catalogue import catalogue_table

if __name__ == "__main__":
    print(catalogue_table())
