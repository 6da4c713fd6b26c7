"""The benchmark's baseline: a bare Django view behind the same middleware, returning {}.

Mounted at /bench/bare only with BENCH_ROUTES=true (bench/run sets it).
"""
from django.http import HttpRequest, JsonResponse


def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({})
