"""The dependencies every router uses: settings (the one to override in tests), services, and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError, forbidden, unauthorized
from api.keys import Caller, authenticate
from api.services import Services, services_for
from penny import Settings

_bearer = HTTPBearer(auto_error=False, description="An API key from `penny keys create`")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_services(settings: Annotated[Settings, Depends(get_settings)]) -> Services:
    return services_for(settings)


def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    services: Annotated[Services, Depends(get_services)],
) -> Caller:
    address = request.client.host if request.client else "unknown"
    wait = services.auth_failures.exhausted(address)
    if wait:  # checked before the key: a guesser learns nothing more, not even from a right guess
        services.metrics.rate_limited.inc()
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests with a wrong API key from this address "
            f"(PENNY_AUTH_FAILURES_PER_MINUTE); retry in {wait} s",
            {"Retry-After": str(wait)},
        )
    if credentials is None or not credentials.credentials:
        raise unauthorized("send an API key as `Authorization: Bearer <key>`; `penny keys create` makes one")
    caller = authenticate(services.settings, credentials.credentials)
    if caller is None:
        services.auth_failures.allow(address)
        raise unauthorized("this API key is unknown or revoked")
    allowed, retry_after = services.rate_limit.allow(caller.key_id)
    if not allowed:
        services.metrics.rate_limited.inc()
        raise ApiError(
            429,
            "rate_limited",
            f"this key made more than {services.settings.rate_limit_per_minute} requests in a minute "
            f"(PENNY_RATE_LIMIT_PER_MINUTE); retry in {retry_after} s",
            {"Retry-After": str(retry_after)},
        )
    request.state.user = caller.user  # for the access log
    return caller


def get_admin(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    if not caller.is_admin:
        raise forbidden("this endpoint needs an admin key (`penny keys create --admin`)")
    return caller


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]
CallerDep = Annotated[Caller, Depends(get_caller)]
AdminDep = Annotated[Caller, Depends(get_admin)]
