"""Semantic versions as Unleash compares them (semver 2.0 precedence, pre-releases lower)."""
from __future__ import annotations

import re
from functools import total_ordering

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


@total_ordering
class SemVer:
    __slots__ = ("core", "pre")

    def __init__(self, core: tuple[int, int, int], pre: tuple):
        self.core = core
        self.pre = pre

    def __eq__(self, other) -> bool:
        return isinstance(other, SemVer) and self.core == other.core and self.pre == other.pre

    def __lt__(self, other: SemVer) -> bool:
        if self.core != other.core:
            return self.core < other.core
        if not self.pre or not other.pre:
            return bool(self.pre) and not other.pre
        for a, b in zip(self.pre, other.pre, strict=False):  # the shorter decides when equal so far
            if a == b:
                continue
            a_num, b_num = a.isdigit(), b.isdigit()
            if a_num and b_num:
                return int(a) < int(b)
            if a_num != b_num:
                return a_num
            return a < b
        return len(self.pre) < len(other.pre)

    def __hash__(self) -> int:
        return hash((self.core, self.pre))


def parse_semver(text: str | None) -> SemVer | None:
    if not text:
        return None
    m = _SEMVER.match(text.strip())
    if not m:
        return None
    pre = tuple(m.group(4).split(".")) if m.group(4) else ()
    return SemVer((int(m.group(1)), int(m.group(2)), int(m.group(3))), pre)
