"""The benchmark's webhook body: an OMS "package" of 8 KB with Turkish text.

Every scenario sends this same payload, so the figures compare like with like: Ulak's
delivery, the bare aiohttp client that measures the loopback limit, and dj-whisperer (the
peer, which runs in its own virtualenv; this module therefore imports only the standard
library).

The payload is sized so that **Ulak's** body, the compact UTF-8 JSON of contract §3
(``{"event":{"type":T,"uuid":HEX32},"payload":P}``), is exactly ``BODY_BYTES`` long.
dj-whisperer encodes the same dict with ``json.dumps`` defaults (``ensure_ascii`` turns
``ş`` into ``\\u015f``, and ``", "`` separators), so its body is somewhat longer;
``encode_whisperer_body`` gives those bytes for the loopback-limit client that imitates it.
"""

from __future__ import annotations

import json
from typing import Any

EVENT_TYPE = "package.created"
BODY_BYTES = 8 * 1024
SAMPLE_UUID_HEX = "5f0c2a9e8b7d4c3a9e1f2b3c4d5e6f70"

# The names the brief asks for, and every Turkish letter (İ ı Ş ş Ğ ğ Ç ç Ö ö Ü ü).
CUSTOMER_NAME = "Şükrü Çağlar Öztürk"
TURKISH_LETTERS = "İ ı Ş ş Ğ ğ Ç ç Ö ö Ü ü"

_ITEMS = (
    ("Kadın Örme Hırka", "Ekru", "Giyim / Kadın / Triko"),
    ("Erkek Keten Gömlek", "Açık Mavi", "Giyim / Erkek / Gömlek"),
    ("Çocuk Yağmurluk", "Sarı", "Giyim / Çocuk / Dış Giyim"),
    ("Bakır Cezve, El İşçiliği", "Bakır", "Ev / Mutfak"),
    ("İznik Desenli Seramik Kâse", "Turkuaz", "Ev / Dekorasyon"),
    ("Hakiki Deri Cüzdan", "Kahverengi", "Aksesuar / Cüzdan"),
    ("Pamuklu Pike Takımı", "Gül Kurusu", "Ev / Yatak Odası"),
    ("Koşu Ayakkabısı", "Gece Mavisi", "Ayakkabı / Spor"),
)

_NOTE = (
    "Sipariş İstanbul Kadıköy şubesine teslim edilecek; lütfen ışıklı tabelanın yanındaki "
    "kapıdan girin. Ödeme ön ödemeli, fatura şirket adına düzenlenmeli. Müşteri, çiçekçi "
    "dükkânının üstündeki daireye bırakılmasını istedi; ulaşılamazsa komşu Gülşen Hanım'a "
    "teslim edilebilir. "
)


def _item(index: int) -> dict[str, Any]:
    name, colour, category = _ITEMS[index % len(_ITEMS)]
    price = 129.90 + 41.25 * index
    return {
        "id": 770200 + index,
        "order_item": 6104300 + index,
        "product": {
            "pk": 510000 + index,
            "sku": f"TR-{38000 + index:06d}",
            "name": name,
            "attributes": {
                "renk": colour,
                "beden": ("S", "M", "L", "XL")[index % 4],
                "kategori": category,
                "menşei": "Türkiye",
            },
        },
        "quantity": 1 + index % 3,
        "price": f"{price:.2f}",
        "discount": f"{price * 0.15:.2f}",
        "tax_rate": "20.00",
        "status": "waiting_for_shipment",
        "stock_location": "Tuzla Ana Depo, İstanbul",
        "barcode": f"8690{index + 5511:09d}",
    }


def _package(item_count: int, note: str) -> dict[str, Any]:
    return {
        "id": 5520147,
        "number": "PKG-2026-005520147",
        "order_number": "SIP-2026-77129004",
        "channel": "web",
        "status": "waiting_for_shipment",
        "created_date": "2026-11-28T09:14:03.120456Z",
        "modified_date": "2026-11-28T09:15:41.004321Z",
        "customer": {
            "id": 440917,
            "full_name": CUSTOMER_NAME,
            "email": "sukru.ozturk@example.com.tr",
            "phone": "+90 532 000 00 00",
        },
        "shipping_address": {
            "full_name": CUSTOMER_NAME,
            "line": "Caferağa Mah. Şair Nefi Sok. Işıl Apt. No:7 D:3",
            "district": "Kadıköy",
            "city": "İstanbul",
            "country": "Türkiye",
            "postcode": "34710",
        },
        "billing_address": {
            "company": "Çağlar Öztürk Gıda Ticaret Ltd. Şti.",
            "tax_office": "Kadıköy Vergi Dairesi",
            "tax_number": "4810293847",
            "line": "Bağdat Cad. No:214 Göztepe",
            "city": "İstanbul",
            "country": "Türkiye",
        },
        "cargo": {"company": "Yurtiçi Kargo", "tracking_number": "YK1029384756TR"},
        "alphabet": TURKISH_LETTERS,
        "items": [_item(index) for index in range(item_count)],
        "total": "3187.45",
        "currency": "TRY",
        "note": note,
    }


def encode_ulak_body(
    payload: Any, event_type: str = EVENT_TYPE, uuid_hex: str = SAMPLE_UUID_HEX
) -> bytes:
    """The bytes Ulak sends for ``payload`` (contract §3: compact JSON, UTF-8, not escaped)."""
    body = {"event": {"type": event_type, "uuid": uuid_hex}, "payload": payload}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_whisperer_body(
    payload: Any, event_type: str = EVENT_TYPE, uuid_hex: str = SAMPLE_UUID_HEX
) -> bytes:
    """The bytes dj-whisperer 0.5.3 sends for ``payload`` (``json.dumps`` defaults)."""
    body = {"event": {"type": event_type, "uuid": uuid_hex}, "payload": payload}
    return json.dumps(body).encode("utf-8")


def build_package_payload(body_bytes: int = BODY_BYTES) -> dict[str, Any]:
    """A deterministic package payload whose Ulak body is exactly ``body_bytes`` long.

    Items are added while they fit; the Turkish note fills most of the rest, and ASCII
    spaces make up the last few bytes (a Turkish letter is two bytes in UTF-8).
    """

    def size(payload: dict[str, Any]) -> int:
        return len(encode_ulak_body(payload))

    items = 1
    while size(_package(items + 1, "")) <= body_bytes:
        items += 1
    base = size(_package(items, ""))
    if base > body_bytes:
        raise ValueError(f"a package needs at least {base} bytes, not {body_bytes}")
    note = ""
    cycle = 0
    while True:
        for character in _NOTE:
            candidate = note + character
            if size(_package(items, candidate)) > body_bytes:
                break
            note = candidate
        else:
            cycle += 1
            if cycle < 100:
                continue
        break
    missing = body_bytes - size(_package(items, note))
    return _package(items, note + " " * missing)


if __name__ == "__main__":
    built = build_package_payload()
    print(
        json.dumps(
            {
                "items": len(built["items"]),
                "ulak_body_bytes": len(encode_ulak_body(built)),
                "whisperer_body_bytes": len(encode_whisperer_body(built)),
            }
        )
    )
