"""One place that turns a JSON parse failure into a one-line error.

Model configs, manifests, preprocessing specs and bench results are all JSON
from outside. ``json.loads`` fails in more ways than ``JSONDecodeError``: a
deeply nested document raises ``RecursionError`` (or parses, then overflows
the stack of whoever walks it), a 5000-digit integer raises ``ValueError``,
bad bytes ``UnicodeDecodeError``. :func:`parse_json` catches them all and
refuses documents nested deeper than any real config.
"""
from __future__ import annotations

import json
from typing import Any

from edgekit.errors import ConfigError, EdgekitError, first_line

# A Keras functional model's config nests about 10 deep; 64 leaves room and
# stays far below Python's recursion limit for whoever walks the result.
MAX_DEPTH = 64


def parse_json(
    text: str | bytes,
    *,
    what: str,
    error: type[EdgekitError] = ConfigError,
    hint: str | None = None,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Parse ``text`` as JSON, or raise ``error`` with one line naming ``what``.

    Args:
        text: the document.
        what: how to name it in the message (e.g. a file path).
        error: the :class:`EdgekitError` subclass to raise.
        hint: what to do, appended to the message.
        max_depth: deepest nesting of arrays/objects accepted.

    Raises:
        error: not JSON, not UTF-8, too deeply nested, or a number Python refuses.

    Example:
        >>> parse_json('{"a": [1, 2]}', what="x")
        {'a': [1, 2]}
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{what} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}).", hint=hint) from None
    except UnicodeDecodeError:
        raise error(f"{what} is not UTF-8 text.", hint=hint) from None
    except RecursionError:
        raise error(f"{what} is nested too deeply to read (more than {max_depth} levels).", hint=hint) from None
    except ValueError as e:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise error(f"{what} cannot be read: {first_line(e, limit=200)}.", hint=hint) from None
    depth = nesting_depth(data)
    if depth > max_depth:
        raise error(f"{what} is nested {depth} levels deep; at most {max_depth} are accepted.", hint=hint)
    return data


def nesting_depth(value: Any) -> int:
    """How deeply arrays/objects nest in a parsed JSON value (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v)
    return deepest
