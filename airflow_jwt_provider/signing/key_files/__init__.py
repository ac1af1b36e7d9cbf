"""Local key material: keystores (JKS, JCEKS, PKCS#12), PEM keys and Google service-account JSON keys.

:mod:`.source` says where the material comes from and detects its format, :mod:`.formats` lists
the entries of each format, :mod:`.loader` opens the selected entry into a
:class:`~.loader.SigningKey` and caches it per process. Only the ``local`` signer reads key files.
"""
