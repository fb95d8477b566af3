from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import QuerySet
from rest_framework import pagination


class IdsFirstPaginator(Paginator):
    """Finds a page's ids first, then loads only those rows.

    ``OFFSET`` over the full query makes the database read (and join) every skipped row;
    over ids alone it walks an index, so a deep page of the undelivered list costs about
    what the first one does however many delivered rows sit beside them.
    """

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        rows = self.object_list
        if not isinstance(rows, QuerySet):
            return self._get_page(rows[bottom:top], number, self)
        ids = list(rows.values_list("pk", flat=True)[bottom:top])
        by_id = {row.pk: row for row in rows.filter(pk__in=ids).order_by()}
        return self._get_page([by_id[pk] for pk in ids if pk in by_id], number, self)


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=`` and ``?page_size=`` (up to 1000); a bad page answers 404 as DRF does."""

    django_paginator_class = IdsFirstPaginator
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 1000
