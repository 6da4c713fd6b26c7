"""The operators' token routes (simplejwt) with the API's strict bodies: a field
other than ``username``/``password`` (``refresh``) is refused, named."""
from __future__ import annotations

from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer

from core.api.strict import StrictSerializer


class StrictTokenObtainPairSerializer(StrictSerializer, TokenObtainPairSerializer):
    pass


class StrictTokenRefreshSerializer(StrictSerializer, TokenRefreshSerializer):
    pass
