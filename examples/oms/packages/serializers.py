"""The payload of the example's events: a DRF serializer, as in the OMS."""

from __future__ import annotations

from rest_framework import serializers

from packages.models import Package

# The OMS sends each status with its translations (see the seed's example payload).
STATUS_TRANSLATIONS = {
    Package.Status.WAITING: "Beklemede",
    Package.Status.PREPARING: "Hazırlanıyor",
    Package.Status.SHIPPED: "Kargolanmış",
    Package.Status.DELIVERED: "Teslim edildi",
}


class PackageSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()

    class Meta:
        model = Package
        fields = [
            "id",
            "number",
            "status",
            "state",
            "city",
            "customer_name",
            "tracking_number",
            "created_date",
            "modified_date",
        ]

    def get_state(self, package: Package) -> dict:
        status = Package.Status(package.status)
        return {
            "name": status.label,
            "translations": {
                "en-us": {"name": status.label},
                "tr-tr": {"name": STATUS_TRANSLATIONS[status]},
            },
        }
