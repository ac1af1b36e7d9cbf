"""Step 2: the key and what it signs. Settings in, signed assertions out.

:mod:`.key_files` reads local key material, :mod:`.signers` holds the signer contract and the
kinds of signer (local, PKCS#11, AWS KMS, and registered plugins), :mod:`.rotation` picks the key
that signs, :mod:`.certificates` judges its certificate, :mod:`.assertion` mints the JWT.
"""
