"""Box: JWT for a Box Platform app (server authentication)."""

from __future__ import annotations

from airflow_jwt_provider.connection.presets.base import Preset
from airflow_jwt_provider.connection.presets.rules import (
    Algorithms,
    ClaimIn,
    Guaranteed,
    MaxLifetime,
    Required,
    Severity,
    Source,
)

JWT_WITHOUT_SDK = Source(
    "JWT without SDKs",
    "https://developer.box.com/guides/authentication/jwt/without-sdk/",
    "exp: Can be set to a maximum value of 60 seconds beyond the issue time.",
)

BOX = Preset(
    name="box",
    title="Box",
    page=JWT_WITHOUT_SDK,
    defaults={"auth_url": "https://api.box.com/oauth2/token", "client_auth": "client_secret_post"},
    audience_rule='the token endpoint, https://api.box.com/oauth2/token ("aud: Always https://api.box.com/oauth2/token")',
    rules=(
        MaxLifetime("box.lifetime", "lifetime", JWT_WITHOUT_SDK, seconds=60),
        Required(
            "box.subject",
            "subject",
            Source(JWT_WITHOUT_SDK.title, JWT_WITHOUT_SDK.url, "sub, required: The Box Enterprise ID … or the User ID"),
            what="the enterprise id (box_sub_type enterprise) or the app user id (box_sub_type user)",
        ),
        ClaimIn(
            "box.box_sub_type",
            "claims.box_sub_type",
            Source(JWT_WITHOUT_SDK.title, JWT_WITHOUT_SDK.url, "box_sub_type, required: enterprise or user"),
            allowed=("enterprise", "user"),
        ),
        Required(
            "box.client_secret",
            "password",
            Source(
                JWT_WITHOUT_SDK.title,
                JWT_WITHOUT_SDK.url,
                "the request sends client_id and client_secret with the assertion (every sample)",
            ),
            what="the app's client secret (Box wants client_id and client_secret with the assertion)",
        ),
        Guaranteed(
            "box.jti",
            "jti",
            Source(
                JWT_WITHOUT_SDK.title,
                JWT_WITHOUT_SDK.url,
                "jti: A unique string of at least 16 characters and at most 128 characters.",
            ),
            requirement="`jti` unique, 16 to 128 characters (a UUID: 36)",
        ),
        Algorithms(
            "box.algorithm",
            "algorithm",
            Source(JWT_WITHOUT_SDK.title, JWT_WITHOUT_SDK.url, "algorithm: This can be one of RS256, RS384, or RS512."),
            allowed=("RS256", "RS384", "RS512"),
        ),
        Required(
            "box.key_id",
            "key_id",
            Source(
                JWT_WITHOUT_SDK.title,
                JWT_WITHOUT_SDK.url,
                "keyid: Not required, though essential when multiple key pairs are defined for an application.",
            ),
            Severity.WARN,
            what="the id Box shows for the public key (Developer Console → Configuration → Public Keys): essential "
            "when the app has several key pairs",
        ),
    ),
    register="the public key (PEM), Developer Console → Configuration → Add and Manage Public Keys; its id goes "
    "in `key_id`",
)
