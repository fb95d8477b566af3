from __future__ import annotations

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=`` and ``?page_size=`` (up to 1000); a bad page answers 404 as DRF does."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 1000
