"""Static files (admin, API docs) straight from the installed apps, without collectstatic.

The standalone service has no web server in front of it by default; these files are small
and few, so finding them through the staticfiles finders on each request is fine.
"""

from __future__ import annotations

import mimetypes
import posixpath

from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404


def serve_static(request, path: str):
    normalized = posixpath.normpath(path).lstrip("/")
    if normalized.startswith("..") or "\x00" in normalized:
        raise Http404("not found")
    found = finders.find(normalized)
    if not found or isinstance(found, list):
        raise Http404("not found")
    content_type, encoding = mimetypes.guess_type(found)
    response = FileResponse(
        open(found, "rb"), content_type=content_type or "application/octet-stream"
    )
    if encoding:
        response.headers["Content-Encoding"] = encoding
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
