"""Regular expressions written by tenants run on RE2: linear time, whatever the pattern.

Flag constraints (Unleash's ``REGEX`` operator) and JSON Schema ``pattern`` /
``patternProperties`` are written by API callers and matched against input
from other callers. Python's ``re`` backtracks: ``^(a+)+$`` against 32 ``a``
and a ``!`` ran for minutes. RE2 (``google-re2``) answers in microseconds, at
the price of its dialect: no lookaround (``(?=``, ``(?!``, ``(?<=``, ``(?<!``),
no backreferences (``\\1``, ``(?P=name)``), no possessive or atomic groups;
``\\d``, ``\\w`` and ``\\b`` are ASCII only. It is the dialect Unleash's own
SDKs (Go's ``regexp``) speak.

Both the pattern and the text matched are bounded (``MAX_PATTERN_LENGTH``,
``MAX_INPUT_LENGTH``): RE2's time is linear in both, and neither needs to be
large for what flags and schemas do.
"""
from __future__ import annotations

from functools import lru_cache

import re2

MAX_PATTERN_LENGTH = 1024
MAX_INPUT_LENGTH = 65_536
# RE2 refuses a pattern whose compiled program needs more memory than this.
_MAX_MEM = 8 << 20


class RegexRefused(ValueError):
    """A pattern RE2 cannot take, or a text too long to be matched. The message says which."""


@lru_cache(maxsize=4096)
def compile_regex(pattern: str, ignore_case: bool = False):
    """The compiled RE2 program of ``pattern``; RegexRefused when it is too long or not RE2."""
    if not isinstance(pattern, str):
        raise RegexRefused("a regular expression must be a string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RegexRefused(f"regular expression longer than {MAX_PATTERN_LENGTH} characters")
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = not ignore_case
    options.max_mem = _MAX_MEM
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise RegexRefused(
            f"not a regular expression the RE2 engine accepts ({reason}); "
            "lookaround and backreferences are not supported"
        ) from exc
    except (UnicodeEncodeError, TypeError) as exc:
        raise RegexRefused("not a regular expression the RE2 engine accepts (invalid text)") from exc


def regex_check(pattern: str) -> str | None:
    """None when ``pattern`` compiles on RE2, else why not."""
    try:
        compile_regex(pattern)
    except RegexRefused as exc:
        return str(exc)
    return None


def regex_search(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    """Whether ``pattern`` matches anywhere in ``text`` (``re.search``'s meaning).

    RegexRefused when the pattern is refused or the text is longer than
    MAX_INPUT_LENGTH characters (or not valid Unicode).
    """
    rx = compile_regex(pattern, ignore_case)
    if len(text) > MAX_INPUT_LENGTH:
        raise RegexRefused(f"text longer than {MAX_INPUT_LENGTH} characters is not matched against a regular expression")
    try:
        return rx.search(text) is not None
    except UnicodeEncodeError as exc:
        raise RegexRefused("text that is not valid Unicode is not matched against a regular expression") from exc
