"""The admin's editor of a flag's state in one environment: a form per strategy type
(everyone, a gradual rollout, specific users; each with constraints), or the raw
Unleash strategies JSON for anything else (several strategies, segments, strategy
variants, other strategy names). What it saves is validated by
:func:`flags.validation.flag_validate`, the API's own rule."""
from __future__ import annotations

from django import forms

from core.admin import PrettyJSONField
from core.errors import ValidationFailed

from .models import FlagEnvironment
from .validation import flag_validate, tenant_segment_ids

STRATEGY_TYPES = [
    ("default", "Everyone (default)"),
    ("flexibleRollout", "Gradual rollout (flexibleRollout)"),
    ("userWithId", "Specific users (userWithId)"),
    ("json", "Other strategies: edit the raw JSON below"),
]
_ONE_STRATEGY_PARAMETERS = {"default": set(), "flexibleRollout": {"rollout", "stickiness", "groupId"},
                            "userWithId": {"userIds"}}


def strategy_form_type(strategies) -> str:
    """Which of the form's strategy types ``strategies`` is, or "json" when only the raw
    JSON can say it (several strategies, segments, strategy variants, other names)."""
    if not strategies:
        return "default"
    if not isinstance(strategies, list) or len(strategies) != 1 or not isinstance(strategies[0], dict):
        return "json"
    s = strategies[0]
    name, params = s.get("name"), s.get("parameters") or {}
    if name not in _ONE_STRATEGY_PARAMETERS or set(s) - {"name", "parameters", "constraints"}:
        return "json"
    if not isinstance(params, dict) or set(params) - _ONE_STRATEGY_PARAMETERS[name]:
        return "json"
    return name


class FlagEnvironmentForm(forms.ModelForm):
    """A flag's state in one environment: a form per strategy type (everyone, a gradual
    rollout, specific users; with constraints), or the raw Unleash strategies JSON for
    anything else. Validated by ``flags.validation.flag_validate``, as the API is."""

    strategy_type = forms.ChoiceField(choices=STRATEGY_TYPES, label="Who gets it", required=False,
                                      widget=forms.Select(attrs={"class": "strategy-type"}))
    rollout = forms.FloatField(required=False, min_value=0, max_value=100, label="Rollout %",
                               widget=forms.NumberInput(attrs={"step": "any", "class": "strategy-flexibleRollout"}))
    stickiness = forms.CharField(required=False, initial="default", max_length=100,
                                 help_text="default (userId, else sessionId), random, or a context field",
                                 widget=forms.TextInput(attrs={"class": "strategy-flexibleRollout"}))
    group_id = forms.CharField(required=False, label="Group id", max_length=200,
                               help_text="Users are bucketed per group: the flag's name unless set",
                               widget=forms.TextInput(attrs={"class": "strategy-flexibleRollout"}))
    user_ids = forms.CharField(required=False, label="User ids", help_text="Comma separated",
                               widget=forms.Textarea(attrs={"rows": 2, "cols": 60, "class": "strategy-userWithId"}))
    constraints = PrettyJSONField(required=False, help_text='Unleash constraints, e.g. [{"contextName": "region", '
                                  '"operator": "IN", "values": ["eu"]}]; [] for none',
                                  widget=forms.Textarea(attrs={"rows": 3, "cols": 60, "class": "json-editor strategy-constraints"}))
    strategies = PrettyJSONField(required=False, label="Strategies (raw JSON)",
                                 widget=forms.Textarea(attrs={"rows": 6, "cols": 70, "class": "json-editor strategy-json"}),
                                 help_text="Unleash strategies: [] enables for everyone. Used when “Who gets it” is "
                                           "“Other strategies”; shows what the form above saves otherwise.")

    class Meta:
        model = FlagEnvironment
        fields = ("environment", "enabled", "strategy_type", "rollout", "stickiness", "group_id", "user_ids",
                  "constraints", "strategies")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        strategies = self.instance.strategies if self.instance.pk else []
        kind = strategy_form_type(strategies)
        self.initial.setdefault("strategy_type", kind)
        one = strategies[0] if kind != "json" and strategies else {}
        params = one.get("parameters") or {}
        self.initial.setdefault("constraints", one.get("constraints") or [])
        if kind == "flexibleRollout":
            try:
                self.initial.setdefault("rollout", float(params.get("rollout", 0)))
            except (TypeError, ValueError):
                self.initial["strategy_type"] = "json"
            self.initial.setdefault("stickiness", params.get("stickiness") or "default")
            self.initial.setdefault("group_id", params.get("groupId") or "")
        if kind == "userWithId":
            self.initial.setdefault("user_ids", ", ".join(p.strip() for p in str(params.get("userIds", "")).split(",") if p.strip()))

    def _flag_name(self) -> str:
        flag = getattr(self.instance, "flag", None) if self.instance.flag_id else None
        return flag.name if flag is not None else ""

    def _built(self, kind: str, data: dict) -> list:
        constraints = data.get("constraints") or []
        if not isinstance(constraints, list):
            raise forms.ValidationError({"constraints": "constraints must be a JSON list"})
        if kind == "default":
            return [{"name": "default", "parameters": {}, "constraints": constraints}] if constraints else []
        if kind == "flexibleRollout":
            if data.get("rollout") is None:
                raise forms.ValidationError({"rollout": "Enter the percentage of users (0 to 100)."})
            pct = data["rollout"]
            return [{"name": "flexibleRollout", "constraints": constraints, "parameters": {
                "rollout": str(int(pct)) if float(pct).is_integer() else str(pct),
                "stickiness": (data.get("stickiness") or "default").strip(),
                "groupId": (data.get("group_id") or "").strip() or self._flag_name()}}]
        ids = [p.strip() for p in (data.get("user_ids") or "").replace("\n", ",").split(",") if p.strip()]
        if not ids:
            raise forms.ValidationError({"user_ids": "Enter at least one user id."})
        return [{"name": "userWithId", "constraints": constraints, "parameters": {"userIds": ",".join(ids)}}]

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("strategy_type") or "json"
        if kind == "json":
            value = cleaned.get("strategies") or []
            if not isinstance(value, list):
                self.add_error("strategies", "strategies must be a JSON list")
                return cleaned
        else:
            try:
                value = self._built(kind, cleaned)
            except forms.ValidationError as exc:
                self.add_error(None, exc)
                return cleaned
        # flag_update's own rule, on the form: refused before anything of the page is
        # saved (the segments a strategy names must be the flag's tenant's).
        tenant_id = getattr(getattr(self.instance, "flag", None), "tenant_id", None)
        try:
            flag_validate(name="f", strategies=value, variants=None, dependencies=None,
                          segment_ids=tenant_segment_ids(tenant_id) if tenant_id is not None else None)
        except ValidationFailed as exc:
            self.add_error("strategies" if kind == "json" else None, exc.message)
        cleaned["strategies"] = value
        return cleaned
