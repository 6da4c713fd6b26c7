"""Claims of the test provider: username, email and the ``groups`` claim from the users file."""
from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from oauth2_provider.oauth2_validators import OAuth2Validator


def user_record(username: str) -> dict:
    return json.loads(Path(settings.OP_USERS_FILE).read_text()).get(username, {})


class GroupsValidator(OAuth2Validator):
    # Every claim whatever the scopes asked: the hub asks for "openid email profile groups".
    oidc_claim_scope = None

    def get_additional_claims(self, request):
        record = user_record(request.user.username)
        return {
            "preferred_username": request.user.username,
            "email": record.get("email", ""),
            "groups": list(record.get("groups", [])),
        }
