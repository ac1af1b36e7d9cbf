"""Step 4: tokens on API calls. A request described as a value (:mod:`.request`), the bearer token added
by :mod:`.auth` on a :mod:`.session`, answers judged by :mod:`.response`, carried across the
triggerer by :mod:`.wire`, and sensors' conditions in :mod:`.polling`. Above this: the hooks.
"""
