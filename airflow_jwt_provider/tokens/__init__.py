"""Step 3: assertions in, access tokens out, cached and shared.

:mod:`.endpoint` talks to the token endpoint (with :mod:`.client_auth`), :mod:`.cache` keeps tokens
per process, :mod:`.shared_cache` shares them through a store (:mod:`.stores`) sealed by
:mod:`.sealing`, and :mod:`.credentials` ties it together per connection.
"""
