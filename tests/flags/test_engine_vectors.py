"""Unleash's client specification test vectors, through the pure engine.

Every case of every file in ``../shared/unleash-client-specification/`` is one
test. Cases that cannot pass would be listed in KNOWN_EXCEPTIONS with the reason
and marked strict xfail; there are none.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from flags.engine import apply_delta, compile_state

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "unleash-client-specification"
KNOWN_EXCEPTIONS: dict[str, str] = {}


def spec_state(doc: dict) -> dict:
    """The state of a vector file: a features document, or delta events (files 19, 20)."""
    state = doc["state"]
    if "events" in state:
        return apply_delta(None, state["events"])
    return state


def _cases():
    index = json.loads((SPEC / "index.json").read_text())
    for filename in index:
        doc = json.loads((SPEC / filename).read_text())
        stem = filename.removesuffix(".json")
        for case in doc.get("tests", []):
            yield pytest.param(filename, "enabled", case, id=f"{stem}::{case['description']}")
        for case in doc.get("variantTests", []):
            yield pytest.param(filename, "variant", case, id=f"{stem}::variant::{case['description']}")


CASES = list(_cases())
_compiled: dict[str, object] = {}


def compiled_for(filename: str):
    if filename not in _compiled:
        _compiled[filename] = compile_state(spec_state(json.loads((SPEC / filename).read_text())))
    return _compiled[filename]


def test_vectors__spec_present__all_files_and_cases_collected():
    assert len(json.loads((SPEC / "index.json").read_text())) == 22
    assert len(CASES) >= 279


@pytest.mark.parametrize("filename,kind,case", CASES)
def test_vector__unleash_case__engine_answers_as_specified(filename, kind, case, request):
    if request.node.callspec.id in KNOWN_EXCEPTIONS:
        pytest.xfail(KNOWN_EXCEPTIONS[request.node.callspec.id])
    result = compiled_for(filename).evaluate(case["toggleName"], case["context"])
    if kind == "enabled":
        assert result.enabled is case["expectedResult"]
    else:
        assert result.variant == case["expectedResult"]
