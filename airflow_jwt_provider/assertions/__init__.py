"""Step 2b: where the JWT comes from. Minted with the connection's key (``sign``), or the JWT the platform
already hands the workload (a projected service-account token file, GitHub Actions' OIDC token, AWS STS
``GetWebIdentityToken``, the GCP metadata server, a callable): then the connection holds no key at all.

:mod:`.base` holds the contract (:class:`~.base.AssertionSource`, :class:`~.base.SourceType`) and
:mod:`.jwt` the decoded view of a platform's JWT; one module per source. The tokens layer asks a source
for a JWT per token request and puts it where the grant says (``assertion``, ``client_assertion``,
``subject_token``).
"""
