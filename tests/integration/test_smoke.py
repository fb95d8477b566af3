from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_healthz_answers_without_a_token(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
