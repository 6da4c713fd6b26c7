"""Behaviour of the pure engine beyond the vectors: rollout, determinism, refusals."""
import pytest

from flags.engine import EngineError, compile_state, normalized_number, validate_feature


def _rollout_state(percent: float) -> dict:
    return {
        "features": [
            {
                "name": "new_ui",
                "enabled": True,
                "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": str(percent), "stickiness": "default", "groupId": "new_ui"}}],
            }
        ]
    }


USERS = [f"user-{i}" for i in range(10_000)]


def test_rollout__ten_percent__within_one_and_a_half_points_of_ten():
    state = compile_state(_rollout_state(10))

    share = sum(state.evaluate("new_ui", {"userId": u}).enabled for u in USERS) / len(USERS)

    assert 0.085 <= share <= 0.115


def test_rollout__raised_from_10_to_50__keeps_every_user_who_had_it():
    at_10 = {u for u in USERS if compile_state(_rollout_state(10)).evaluate("new_ui", {"userId": u}).enabled}
    at_50 = {u for u in USERS if compile_state(_rollout_state(50)).evaluate("new_ui", {"userId": u}).enabled}

    assert at_10 and at_10 <= at_50
    assert 0.485 <= len(at_50) / len(USERS) <= 0.515


def test_bucketing__the_values_every_unleash_sdk_computes():
    # The cross-SDK check of Unleash's Node, Java and Go clients
    # ("normalized values are the same across node, java and go clients").
    assert normalized_number("123", "gr1") == 73
    assert normalized_number("999", "groupX") == 25


def test_bucketing__same_input__same_bucket_in_another_process_with_another_hash_seed():
    import json
    import os
    import subprocess
    import sys

    ids = [f"user-{i}" for i in range(200)]
    here = [normalized_number(i, "demo") for i in ids]
    code = ("import json, sys; from flags.engine import normalized_number; "
            "print(json.dumps([normalized_number(i, 'demo') for i in json.loads(sys.argv[1])]))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(ids)], env=env,
                         capture_output=True, text=True, check=True).stdout

    assert json.loads(out) == here
    assert len(set(here)) > 50  # spread over the buckets, not a constant


def test_evaluate__two_compilations__same_answers():
    first, second = compile_state(_rollout_state(33)), compile_state(_rollout_state(33))

    assert [first.evaluate("new_ui", {"userId": u}).enabled for u in USERS[:500]] == [
        second.evaluate("new_ui", {"userId": u}).enabled for u in USERS[:500]
    ]


@pytest.mark.parametrize(
    "feature,message",
    [
        ({"name": "f", "enabled": True, "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "150"}}]}, "rollout must be a number 0-100"),
        ({"name": "f", "enabled": True, "strategies": [{"name": "default", "constraints": [{"contextName": "userId", "operator": "FOO", "values": []}]}]}, "unknown operator 'FOO'"),
        ({"name": "f", "enabled": True, "strategies": [{"name": "default", "constraints": [{"operator": "IN", "values": []}]}]}, "needs a contextName"),
        ({"name": "f", "enabled": True, "variants": [{"weight": 1}]}, "every variant needs a name"),
        ({"enabled": True}, "a feature needs a name"),
    ],
)
def test_validate_feature__malformed__refused_with_clear_message(feature, message):
    with pytest.raises(EngineError, match=message):
        validate_feature(feature)


def test_reason__rollout_split_targeting_and_default__reported():
    state = compile_state(
        {
            "features": [
                {"name": "static", "enabled": True, "strategies": []},
                {"name": "off", "enabled": False, "strategies": []},
                {"name": "split", "enabled": True, "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "50"}}]},
                {"name": "target", "enabled": True, "strategies": [{"name": "userWithId", "parameters": {"userIds": "a,b"}}]},
            ]
        }
    )

    assert state.evaluate("static", {}).reason == "STATIC"
    assert state.evaluate("off", {}).reason == "DISABLED"
    assert state.evaluate("target", {"userId": "a"}).reason == "TARGETING_MATCH"
    assert state.evaluate("target", {"userId": "z"}).reason == "DEFAULT"
    assert state.evaluate("missing", {}).reason == "FLAG_NOT_FOUND"
    assert {state.evaluate("split", {"userId": u}).reason for u in USERS[:50] if state.evaluate("split", {"userId": u}).enabled} == {"SPLIT"}
