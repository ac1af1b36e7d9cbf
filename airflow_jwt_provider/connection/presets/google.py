"""Google: a service account's JSON key signs its own assertion (OAuth 2.0 for server-to-server applications)."""

from __future__ import annotations

from airflow_jwt_provider.connection.presets.base import Preset
from airflow_jwt_provider.connection.presets.rules import Algorithms, MaxLifetime, Required, Source

SERVICE_ACCOUNT = Source(
    "Using OAuth 2.0 for Server to Server Applications",
    "https://developers.google.com/identity/protocols/oauth2/service-account#httprest",
)
AIP_4112 = Source(
    "AIP-4112: Service account keys",
    "https://google.aip.dev/auth/4112",
    "Sign the JWT with RSA-256 using the private_key found in the service account JSON file.",
)

GOOGLE = Preset(
    name="google",
    title="Google service account",
    page=SERVICE_ACCOUNT,
    # The token endpoint comes from the key file's token_uri (https://oauth2.googleapis.com/token).
    defaults={"keystore_type": "google_json"},
    scope_in_assertion=True,
    subject_defaults_to_issuer=False,  # sub names a user only for domain-wide delegation
    audience_rule="the key file's `token_uri` (https://oauth2.googleapis.com/token)",
    rules=(
        MaxLifetime(
            "google.lifetime",
            "lifetime",
            SERVICE_ACCOUNT.quoting("exp: This value has a maximum of 1 hour after the issued time."),
            seconds=3600,
        ),
        Required(
            "google.scope",
            "scope",
            SERVICE_ACCOUNT.quoting("scope: A space-delimited list of the permissions that the application requests."),
            what='the scopes the token needs, e.g. "https://www.googleapis.com/auth/cloud-platform"',
        ),
        Algorithms("google.algorithm", "algorithm", AIP_4112, allowed=("RS256",)),
    ),
    register="Google makes the key: download the service account's JSON key, or upload a certificate with "
    "`gcloud iam service-accounts keys upload`; `issuer` is then the account's e-mail and `key_id` the key id",
)
