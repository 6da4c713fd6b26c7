"""The evaluate routes' plain body checks give what the DRF serializers gave:
the same accepted values and the same JSON 400 for every bad body."""
from __future__ import annotations

import pytest

from core.errors import ValidationFailed
from flags.api.bodies import evaluate_all_body, evaluate_body
from flags.api.views.evaluate import EvaluateAllSerializer, EvaluateSerializer

BODIES = [
    {"flag_name": "f"},
    {"flag_name": "  padded  ", "environment": "production", "user_id": " u1 ", "context": {"userId": "x"}},
    {"flag_name": 12, "user_id": 3.5},
    {"flag_name": "f", "environment": None, "user_id": None},
    {"flag_name": "f", "user_id": ""},
    {"flag_name": "f", "user_id": "   "},
    {"flag_name": "f", "extra": "refused"},
    {"flag_name": None, "extra": "refused with the other errors"},
    {},
    {"flag_name": None},
    {"flag_name": ""},
    {"flag_name": "   "},
    {"flag_name": True},
    {"flag_name": ["f"]},
    {"flag_name": {"a": 1}},
    {"flag_name": "x" * 201},
    {"flag_name": "x" * 200},
    {"flag_name": "a\x00b"},
    {"flag_name": "x" * 201 + "\x00"},
    {"flag_name": "f", "environment": ""},
    {"flag_name": "f", "environment": "not a slug"},
    {"flag_name": "f", "environment": "prod/eu"},
    {"flag_name": "f", "environment": 7},
    {"flag_name": "f", "environment": False},
    {"flag_name": "f", "environment": "ok\x00"},
    {"flag_name": "f", "environment": ["production"]},
    {"flag_name": "f", "environment": "  production  "},
    {"flag_name": "f\ud800", "user_id": "\udfff"},
    {"flag_name": "f", "user_id": "u" * 501},
    {"flag_name": "f", "user_id": []},
    {"flag_name": "f", "context": None},
    {"flag_name": "f", "context": []},
    {"flag_name": "f", "context": "x"},
    {"flag_name": "f", "context": 1},
    {"flag_name": "f", "context": {}},
    {"flag_name": "f", "context": {"properties": {"a": [1, {"b": None}]}}},
    {"flag_name": None, "environment": "bad slug", "user_id": True, "context": []},
]


def _serializer_answer(serializer_class, data):
    """The serializer's answer as the DRF view words it (the exception handler)."""
    from rest_framework.exceptions import ValidationError

    from core.api.exceptions import exception_handler

    ser = serializer_class(data=data)
    if ser.is_valid():
        return "ok", dict(ser.validated_data)
    error = exception_handler(ValidationError(ser.errors), {}).data["error"]
    details = {name: [str(m) for m in messages] for name, messages in ser.errors.items()}
    return "invalid", error["code"], error["message"], details


def _plain_answer(check, data):
    try:
        return "ok", check(data)
    except ValidationFailed as exc:
        return "invalid", exc.code, exc.message, exc.details


@pytest.mark.parametrize("data", BODIES)
def test_evaluate_body__any_body__same_answer_as_the_serializer(data):
    assert _plain_answer(evaluate_body, data) == _serializer_answer(EvaluateSerializer, data)


@pytest.mark.parametrize("data", [{k: v for k, v in b.items() if k != "flag_name"} for b in BODIES])
def test_evaluate_all_body__any_body__same_answer_as_the_serializer(data):
    assert _plain_answer(evaluate_all_body, data) == _serializer_answer(EvaluateAllSerializer, data)


@pytest.mark.parametrize("data", [[], "text", 3, None])
def test_evaluate_body__not_an_object__refused(data):
    with pytest.raises(ValidationFailed, match="must be a JSON object"):
        evaluate_body(data)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "route, body, field, message",
    [
        ("evaluate", {"environment": "production"}, "flag_name", "This field is required."),
        ("evaluate", {"flag_name": "x" * 201, "environment": "production"}, "flag_name",
         "Ensure this field has no more than 200 characters."),
        ("evaluate", {"flag_name": "f", "environment": "no slug"}, "environment",
         'Enter a valid "slug" consisting of letters, numbers, underscores or hyphens.'),
        ("evaluate", {"flag_name": "f", "environment": "production", "context": []}, "context",
         'Expected a dictionary of items but got type "list".'),
        ("evaluate-all", {"environment": "production", "user_id": {"a": 1}}, "user_id", "Not a valid string."),
        ("evaluate-all", {"environment": "production", "context": None}, "context", "This field may not be null."),
    ],
)
def test_evaluate_routes__bad_body__json_400_naming_the_field(route, body, field, message, tenant, environments, make_key,
                                                              client_for):
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))
    r = client.post(f"/api/v1/feature-flags/{route}", body, format="json")
    assert r.status_code == 400
    assert r["Content-Type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["message"] == "Invalid input"
    assert error["details"][field] == [message]


@pytest.mark.django_db
@pytest.mark.parametrize("route", ["evaluate", "evaluate-all"])
def test_evaluate_routes__body_not_an_object__json_400(route, tenant, environments, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))
    r = client.post(f"/api/v1/feature-flags/{route}", [1, 2], format="json")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "validation_failed"
