"""Google workload identity federation: the platform's JWT exchanged at Google's STS (RFC 8693), then impersonation.

The pool provider trusts the platform's issuer (a Kubernetes cluster, GitHub Actions, AWS, Entra...). Google's
STS exchanges the platform's JWT for a *federated* access token; with ``service_account_impersonation_url`` that
token then asks the IAM Credentials API for a service account's access token (the step Google's credential
configuration files describe). No service account key.
"""

from __future__ import annotations

from airflow_jwt_provider.connection.kinds import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TOKEN_TYPE, GrantType
from airflow_jwt_provider.connection.presets.base import Preset
from airflow_jwt_provider.connection.presets.rules import Keyless, OneOf, Required, Severity, Source, UrlShape

STS = Source(
    "Class GoogleIdentityStsV1ExchangeTokenRequest (Security Token Service API v1)",
    "https://googleapis.dev/dotnet/Google.Apis.CloudSecurityToken.v1/latest/api/"
    "Google.Apis.CloudSecurityToken.v1.Data.GoogleIdentityStsV1ExchangeTokenRequest.html",
)
STS_METHOD = Source(
    "GoogleApi.STS.V1.Api.V1 (sts.token)",
    "https://hexdocs.pm/google_api_sts/GoogleApi.STS.V1.Api.V1.html",
)
GENERATE_ACCESS_TOKEN = Source(
    "Method: projects.serviceAccounts.generateAccessToken",
    "https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/generateAccessToken",
)
WORKLOAD_IDENTITY = Source(
    "Workload Identity Federation",
    "https://cloud.google.com/iam/docs/workload-identity-federation",
)
STS_TOKEN_URL = "https://sts.googleapis.com/v1/token"
_PROVIDER = r"//iam\.googleapis\.com/projects/\d+/locations/global/workloadIdentityPools/[^/]+/providers/[^/]+"
_IMPERSONATION = r"https://iamcredentials\.googleapis\.com/v1/projects/-/serviceAccounts/[^/]+:generateAccessToken"

GOOGLE_WORKLOAD_IDENTITY = Preset(
    name="google_workload_identity",
    title="Google workload identity federation",
    page=STS,
    defaults={
        "auth_url": STS_TOKEN_URL,
        "client_auth": "none",  # the STS is called without client authentication
        "requested_token_type": ACCESS_TOKEN_TYPE,
    },
    grant_type=GrantType.TOKEN_EXCHANGE,
    subject_defaults_to_issuer=False,
    audience_rule="the platform's: `assertion_audience`, one the pool provider allows",
    rules=(
        Keyless(
            "google_workload_identity.source",
            "assertion_source",
            WORKLOAD_IDENTITY.quoting(
                "Using identity federation, you can grant on-premises or multicloud workloads "
                "access to Google Cloud resources without using a service account key."
            ),
            instead="use preset google to sign with a service account key",
        ),
        Required(
            "google_workload_identity.audience",
            "exchange_audience",
            STS.quoting(
                "The full resource name of the identity provider ... Required when exchanging an external "
                "credential for a Google access token."
            ),
            what="//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/"
            "<provider>",
        ),
        UrlShape(
            "google_workload_identity.audience_shape",
            "exchange_audience",
            STS.quoting("The full resource name of the identity provider"),
            pattern=_PROVIDER,
            shape="//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/"
            "<provider>",
        ),
        Required(
            "google_workload_identity.scope",
            "scope",
            STS.quoting("Required when exchanging an external credential for a Google access token."),
            what='"https://www.googleapis.com/auth/cloud-platform"',
        ),
        OneOf(
            "google_workload_identity.requested_token_type",
            "requested_token_type",
            STS.quoting("Required. ... Must be urn:ietf:params:oauth:token-type:access_token."),
            allowed=(ACCESS_TOKEN_TYPE,),
        ),
        OneOf(
            "google_workload_identity.subject_token_type",
            "subject_token_type",
            STS.quoting(
                "Supported values are urn:ietf:params:oauth:token-type:jwt, "
                "urn:ietf:params:oauth:token-type:id_token, ..."
            ),
            allowed=(JWT_TOKEN_TYPE, ID_TOKEN_TYPE),
        ),
        UrlShape(
            "google_workload_identity.auth_url",
            "auth_url",
            STS_METHOD.quoting("POST https://sts.googleapis.com/v1/token"),
            Severity.WARN,
            pattern=r"https://sts\.googleapis\.com/v1/token",
            shape=STS_TOKEN_URL,
        ),
        UrlShape(
            "google_workload_identity.impersonation",
            "service_account_impersonation_url",
            GENERATE_ACCESS_TOKEN.quoting(
                "The - wildcard character is required; replacing it with a project ID is invalid."
            ),
            pattern=_IMPERSONATION,
            shape="https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/<email>:generateAccessToken",
        ),
    ),
    register="nothing to upload: create a workload identity pool provider trusting the platform's issuer, and "
    "grant its principal roles/iam.serviceAccountTokenCreator on the service account to impersonate",
)
