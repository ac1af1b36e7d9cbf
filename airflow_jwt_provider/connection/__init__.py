"""Step 1 of the pipeline: a ``jwt_bearer`` connection in, validated settings out.

:mod:`.fields` declares every extra key (the form and the parser read it), :mod:`.parser` turns a
connection into :class:`~.settings.JwtBearerSettings`, :mod:`.presets` holds the vendors' rules,
:mod:`.trusted_hosts` where a token may go, :mod:`.token_parameters` what a call may override.
Nothing here signs, fetches or sends.
"""
