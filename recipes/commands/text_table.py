"""Plain-text tables for the command line."""


def format_table(header, rows):
    """Rows of strings as an aligned plain-text table under `header`, with a rule below it."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
