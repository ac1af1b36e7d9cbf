"""What every layer uses: redaction of credentials, the retry policy, numbers of seconds, process caches, registries.

Nothing here knows about connections, keys or tokens; everything above may import it.
"""
