"""Microsoft Entra workload identity: the platform's JWT is the client assertion (a federated credential).

The request is Entra's certificate flow with one difference, the source of ``client_assertion``: a JWT the
platform signs (the AKS projected token whose path the webhook puts in ``AZURE_FEDERATED_TOKEN_FILE``, a
GitHub Actions OIDC token, a GCP or AWS identity token) for the audience the app's federated credential
names, ``api://AzureADTokenExchange``. No key, no secret, nothing to rotate.
"""

from __future__ import annotations

from airflow_jwt_provider.connection.kinds import GrantType
from airflow_jwt_provider.connection.presets.base import Preset
from airflow_jwt_provider.connection.presets.entra import CLIENT_CREDENTIALS, SCOPE, TOKEN_URL_PATTERN
from airflow_jwt_provider.connection.presets.rules import (
    Keyless,
    OneOf,
    Required,
    ScopeSuffix,
    Severity,
    Source,
    UrlShape,
)

FEDERATED_CREDENTIAL = Source(
    "federatedIdentityCredential resource type",
    "https://learn.microsoft.com/en-us/graph/api/resources/federatedidentitycredential",
)
WEBHOOK = Source(
    "Mutating Admission Webhook (Azure AD Workload Identity)",
    "https://azure.github.io/azure-workload-identity/docs/installation/mutating-admission-webhook.html",
)
#: The audience of the federated token in the public cloud, and in the US government and China clouds.
TOKEN_EXCHANGE_AUDIENCES = (
    "api://AzureADTokenExchange",
    "api://AzureADTokenExchangeUSGov",
    "api://AzureADTokenExchangeChina",
)
_AUDIENCE = {"assertion_audience": TOKEN_EXCHANGE_AUDIENCES[0]}

ENTRA_WORKLOAD_IDENTITY = Preset(
    name="entra_workload_identity",
    title="Microsoft Entra workload identity federation",
    page=CLIENT_CREDENTIALS.quoting(
        "Everything in the request is the same as the certificate-based flow, with the crucial exception of the "
        "source of the client_assertion."
    ),
    defaults={"client_auth": "private_key_jwt", "assertion_source": "file"},
    source_defaults={
        "file": {"assertion_file": "$AZURE_FEDERATED_TOKEN_FILE", **_AUDIENCE},
        "github_actions": _AUDIENCE,
        "gcp_metadata": _AUDIENCE,
        "aws_sts": _AUDIENCE,
    },
    grant_type=GrantType.CLIENT_CREDENTIALS,
    audience_rule="the platform's: `assertion_audience` (`api://AzureADTokenExchange`)",
    rules=(
        Required("entra_workload_identity.scope", "scope", SCOPE, what='"https://graph.microsoft.com/.default"'),
        ScopeSuffix("entra_workload_identity.scope_default", "scope", SCOPE, Severity.WARN, suffix="/.default"),
        UrlShape(
            "entra_workload_identity.auth_url",
            "auth_url",
            CLIENT_CREDENTIALS.quoting("POST /{tenant}/oauth2/v2.0/token"),
            Severity.WARN,
            pattern=TOKEN_URL_PATTERN,
            shape="https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token (AZURE_TENANT_ID's v2 endpoint)",
        ),
        Keyless(
            "entra_workload_identity.source",
            "assertion_source",
            WEBHOOK.quoting("AZURE_FEDERATED_TOKEN_FILE | The path of the projected service account token file."),
            instead="use preset entra to sign with a certificate of the app",
        ),
        OneOf(
            "entra_workload_identity.audience",
            "assertion_audience",
            FEDERATED_CREDENTIAL.quoting(
                "This field is mandatory and should be set to api://AzureADTokenExchange for Microsoft Entra ID."
            ),
            Severity.WARN,
            allowed=TOKEN_EXCHANGE_AUDIENCES,
        ),
    ),
    register="nothing to upload: add a federated credential to the app registration (issuer, subject and "
    "audience `api://AzureADTokenExchange` of the platform's token)",
)
