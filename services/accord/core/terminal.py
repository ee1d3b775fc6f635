"""Text that came from data, made safe to print on a terminal.

Names, addresses, reasons and column headers come from other organisations' systems. Printed
as they are, a name holding an escape sequence could move the cursor, clear the screen or
retitle the window, a bidi override could reorder what a coordinator reads, and a name like
"[red]x" would be taken by rich as markup. Everything from data goes through `printable`
(control and invisible formatting characters replaced by U+FFFD, visibly), and is given to
rich as a `Text` (`plain`) or escaped (`markup_safe`), never as markup.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from rich.markup import escape
from rich.text import Text

__all__ = ["REPLACEMENT", "markup_safe", "plain", "printable"]

REPLACEMENT: Final = "\ufffd"
# Controls (C0, DEL, C1: ESC, CSI, BEL, backspace, carriage return, newline, tab), format
# characters (bidi embeddings, overrides, isolates and marks; zero-width spaces and joiners;
# the byte-order mark) and the line and paragraph separators.
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp"})


def printable(value: object) -> str:
    """`value` as one line of text that can neither control the terminal nor hide: every
    control or invisible formatting character becomes U+FFFD. None is ""."""
    text = "" if value is None else str(value)
    if text.isascii() and text.isprintable():
        return text  # the common case: nothing to replace
    return "".join(
        REPLACEMENT if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text
    )


def plain(value: object, style: str = "") -> Text:
    """`value` as a rich Text: shown as written, never read as markup or emoji codes."""
    return Text(printable(value), style=style)


def markup_safe(value: object) -> str:
    """`value` for a rich markup string (an f-string given to console.print): printable,
    with every "[" that could open a tag escaped."""
    return escape(printable(value))
