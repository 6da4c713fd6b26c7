"""In-process throughput of the flag engine (one core). Run: .venv/bin/python bench/engine.py"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flags.engine import compile_state  # noqa: E402

STATE = {
    "segments": [{"id": 1, "constraints": [{"contextName": "region", "operator": "IN", "values": ["eu", "us"]}]}],
    "features": [
        {"name": "simple", "enabled": True, "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "default"}}]},
        {
            "name": "constrained", "enabled": True,
            "strategies": [{
                "name": "flexibleRollout", "parameters": {"rollout": "80"}, "segments": [1],
                "constraints": [
                    {"contextName": "appVersion", "operator": "SEMVER_GT", "value": "1.2.0"},
                    {"contextName": "email", "operator": "STR_ENDS_WITH", "values": ["@example.com"]},
                    {"contextName": "plan", "operator": "IN", "values": ["pro", "enterprise"]},
                ],
            }],
        },
        {
            "name": "variants", "enabled": True, "strategies": [{"name": "default"}],
            "variants": [{"name": n, "weight": w, "payload": {"type": "string", "value": n}} for n, w in (("a", 33), ("b", 33), ("c", 34))],
        },
    ],
}


def measure(state, name: str, contexts: list[dict], seconds: float = 1.5) -> float:
    evaluate = state.evaluate
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for ctx in contexts:
            evaluate(name, ctx)
        n += len(contexts)
    return n / (time.perf_counter() - start)


def main() -> None:
    state = compile_state(STATE)
    simple = [{"userId": f"user-{i}"} for i in range(1000)]
    rich = [{"userId": f"user-{i}", "properties": {"region": "eu", "appVersion": "1.3.0", "email": f"u{i}@example.com", "plan": "pro"}} for i in range(1000)]
    print("flag engine, evaluations per second on one core")
    print(f"  simple flag (flexibleRollout 50%):          {measure(state, 'simple', simple):>12,.0f}   (target 200,000)")
    print(f"  3 constraints + a segment:                  {measure(state, 'constrained', rich):>12,.0f}")
    print(f"  3 weighted variants:                        {measure(state, 'variants', simple):>12,.0f}")


if __name__ == "__main__":
    main()
