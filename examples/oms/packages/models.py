"""The example's business model: a package of an order, moving through its statuses."""

from __future__ import annotations

from django.db import models


class Package(models.Model):
    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        PREPARING = "preparing", "Preparing"
        SHIPPED = "shipped", "Shipped"
        DELIVERED = "delivered", "Delivered"

    number = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)
    city = models.CharField(max_length=64)
    customer_name = models.CharField(max_length=128, blank=True)
    tracking_number = models.CharField(max_length=64, blank=True)
    created_date = models.DateTimeField(auto_now_add=True)
    modified_date = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.number} ({self.status})"
