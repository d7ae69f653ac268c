"""The Subsonic / OpenSubsonic API under /rest/, for phone and desktop apps.

``router.py`` receives the calls (GET or form POST, with or without ``.view``),
``auth.py`` proves the caller, ``params.py`` reads and bounds the parameters,
``responses.py`` answers in XML, JSON or JSONP, and the endpoints are in ``browse.py``
(the catalogue), ``media.py`` (audio and covers) and ``personal.py`` (playlists, stars,
scrobbles, the play queue, the user, scans).
"""
