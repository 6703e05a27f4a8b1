"""The real server answers: gunicorn with the tiny model over a small library."""

import requests


def test_live_server_searches(live_server) -> None:  # type: ignore[no-untyped-def]
    response = requests.get(
        f"{live_server.url}/api/search", params={"q": "Eiffel Tower at night"}, timeout=30
    )
    assert response.status_code == 200
    body = response.json()
    assert len(body["results"]) == 12
    assert body["next_offset"] == 12 or body["next_offset"] is None
