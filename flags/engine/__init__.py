"""A pure-Python feature-flag engine with Unleash's semantics (no Django imports).

    compiled = compile_state(doc)            # an Unleash /client/features document
    ev = compiled.evaluate("flag", context)  # Evaluation(enabled, variant, reason)
"""
from .core import (
    CompiledState,
    Evaluation,
    apply_delta,
    compile_state,
    normalized_number,
    validate_feature,
    validate_segment,
)
from .errors import EngineError

__all__ = [
    "CompiledState",
    "EngineError",
    "Evaluation",
    "apply_delta",
    "compile_state",
    "normalized_number",
    "validate_feature",
    "validate_segment",
]
