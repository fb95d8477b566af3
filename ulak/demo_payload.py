"""OMS package payloads for ``ulak demo``, shaped like the seed's example (Turkish text included).

The seed's undelivered-list example carries a ``package.status.shipped`` payload: the
package with its state, commands, shipment, stock location, items and shipping address.
``build_package_payload`` makes one of those for a demo package, with the same keys and
nesting, about 5 KB of JSON. Only the standard library is used.
"""

from __future__ import annotations

import datetime
from typing import Any

EVENT_TYPE = "package.status.shipped"

_CITIES = (
    # (city, district, township, customer first name, last name, address line)
    ("İSTANBUL", "CAFERAĞA MAH", "KADIKÖY", "ŞÜKRÜ", "ÇAĞLAR", "Moda Cd. No:12 D:4"),
    ("İZMİR", "ALSANCAK MAH", "KONAK", "GÜLŞEN", "ÖZTÜRK", "Kıbrıs Şehitleri Cd. No:7"),
    ("ANKARA", "ÇİFTE HAVUZLAR", "ESENLER", "ALİ", "VELİ", "Test Caddesi Test Sokak 6/9"),
    ("BURSA", "ÇEKİRGE MAH", "OSMANGAZİ", "İLKNUR", "DOĞAN", "Çekirge Cd. No:41"),
    ("MUĞLA", "KUMBAHÇE MAH", "BODRUM", "ÖMER", "IŞIK", "Neyzen Tevfik Cd. No:3"),
)
_PRODUCTS = (
    ("AKN-006", "Ultimate Organic Cotton T Shirt With Crew Neck", "kısa", "300.00"),
    ("AKN-114", "Kadın Örme Hırka", "uzun", "549.90"),
    ("AKN-231", "Erkek Keten Gömlek", "uzun", "419.00"),
    ("AKN-318", "Çocuk Yağmurluk", "kısa", "389.50"),
)


def _moment(base: datetime.datetime, minutes: float) -> str:
    value = base + datetime.timedelta(minutes=minutes)
    return (
        value.astimezone(datetime.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    )


def _state(state_id: int, name: str, turkish: str, enum_class: str, value: str, ct: int) -> dict:
    return {
        "id": state_id,
        "name": name,
        "config": {},
        "enum_class": enum_class,
        "enum_value": value,
        "content_type": ct,
        "created_date": "2021-06-30T14:43:26.945309Z",
        "translations": {"en-us": {"name": name}, "tr-tr": {"name": turkish}},
        "modified_date": "2022-10-14T10:39:33.524002Z",
    }


def _command(command_id: int, slug: str, label: str, command: str, destination: int) -> dict:
    return {
        "id": command_id,
        "slug": slug,
        "label": label,
        "command": command,
        "source_state": 44,
        "translations": None,
        "configuration": {},
        "ui_visibility": ["third_party", "oms_web"],
        "destination_state": destination,
        "is_packageitem_parameter_required": False,
    }


def _place(pk: int, name: str, **extra: Any) -> dict:
    return {"pk": pk, "name": name, "is_active": True, **extra}


def build_package_payload(index: int, *, now: datetime.datetime | None = None) -> dict[str, Any]:
    """The ``package.status.shipped`` payload of demo package number ``index``."""
    now = now or datetime.datetime.now(datetime.UTC)
    city, district, township, first_name, last_name, line = _CITIES[index % len(_CITIES)]
    sku, product_name, sleeve, price = _PRODUCTS[index % len(_PRODUCTS)]
    package_id = 8812 + index
    order_id = 8449 + index
    order_number = f"24066701063{11153 + index:05d}"
    country = {"pk": 1, "code": "tr", "name": "Türkiye", "is_active": True}
    shipped = _state(44, "Shipped", "Kargolanmış", "PackageStatus", "700", 4)
    return {
        "id": package_id,
        "city": city,
        "state": shipped,
        "number": f"{order_number}P1",
        "commands": [
            _command(
                399,
                "package__update_package_shipment_status__shipped__shipped",
                "Kargo Durumunu Sorgula",
                "UPDATE_PACKAGE_SHIPMENT_STATUS",
                44,
            ),
            _command(
                266,
                "package__deliver_package__shipped__delivered",
                "teslim et",
                "DELIVER_PACKAGE",
                47,
            ),
        ],
        "order_id": order_id,
        "shipment": {
            "id": 4424 + index,
            "state": 96,
            "invoice": None,
            "package": package_id,
            "awb_number": f"{35667 + index}",
            "created_date": _moment(now, -30),
            "query_number": f"{10227 + index}",
            "cargo_company": {
                "id": 728,
                "name": "Yurtiçi Kargo",
                "erp_code": "yurtici",
                "is_active": True,
                "shipping_company": "yurtici",
            },
            "modified_date": _moment(now, -30),
            "pay_on_delivery_amount": None,
            "estimated_delivery_date": None,
        },
        "remote_id": None,
        "date_placed": _moment(now, -24 * 60),
        "order_notes": "Lütfen kapıcıya bırakmayın; akşam 18:00'den sonra teslim edin.",
        "channel_name": "PZ Shop",
        "created_date": _moment(now, -23 * 60),
        "order_number": order_number,
        "payment_type": "funds_transfer",
        "delivery_type": "standard",
        "modified_date": _moment(now, 0),
        "shipment_date": _moment(now, 0),
        "invoice_number": None,
        "stock_location": {
            "id": 1,
            "name": "PZ Mağaza 1",
            "erp_code": "1",
            "address": {
                "id": 1,
                "city": _place(40, "İSTANBUL", country=1),
                "line": "Pınar, Katar Cd No:73, 34460 Sarıyer/İstanbul",
                "title": "PZ Mağaza 1",
                "country": country,
                "district": _place(35463, "PINAR MAH", city=40),
                "township": _place(457, "SARIYER", city=40),
            },
            "is_active": True,
            "stock_location_type": "store",
        },
        "packageitem_set": [
            {
                "id": 9043 + index,
                "state": _state(68, "Shipped", "Kargolanmış", "PackageItemStatus", "800", 5),
                "package": package_id,
                "order_item": {
                    "id": 8350 + index,
                    "order": order_id,
                    "price": price,
                    "state": _state(28, "Preparing", "Hazırlanıyor", "OrderStatus", "450", 3),
                    "product": {
                        "id": 366 + index,
                        "sku": sku,
                        "name": product_name,
                        "base_code": sku,
                        "attributes": {"Length": "Long", "integration_kol_boyu": sleeve},
                    },
                    "tax_rate": "8.00",
                    "net_amount": price,
                    "retail_price": price,
                    "price_currency": "try",
                    "discount_amount": "0.00",
                },
                "created_date": _moment(now, -23 * 60),
                "modified_date": _moment(now, 0),
            }
        ],
        "tracking_number": f"{35667 + index}",
        "shipping_address": {
            "id": 1817 + index,
            "city": _place(7 + index, city, country=1),
            "line": line,
            "email": "musteri@example.com",
            "title": "Ev",
            "country": country,
            "customer": {
                "pk": 1124 + index,
                "email": "musteri@example.com",
                "last_name": last_name,
                "first_name": first_name,
                "phone_number": "05555555555",
            },
            "district": _place(5309 + index, district, city=7 + index),
            "postcode": "06420",
            "township": _place(68 + index, township, city=7 + index),
            "last_name": last_name,
            "first_name": first_name,
            "address_type": "customer",
        },
        "extra_information": {},
        "order_has_gift_box": False,
        "is_click_and_collect": False,
    }
