"""Issue 29: ``--allowed-origin`` answers CORS for that origin only, on a real socket."""

from __future__ import annotations

import httpx

ALLOWED = "http://localhost:3000"
PREFLIGHT = {
    "origin": ALLOWED,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization,content-type",
}


def test_allowed_origin_gets_cors_and_others_none(live):
    url = live(allowed_origins=(ALLOWED,), api_key="s3cret")
    key = {"authorization": "Bearer s3cret"}
    with httpx.Client(base_url=url, timeout=30) as http:
        for path in ("/v1/fine_tuning/jobs", "/health"):  # no key on a preflight
            pre = http.options(path, headers=PREFLIGHT)
            assert pre.status_code == 204, (path, pre.text)
            assert pre.headers["access-control-allow-origin"] == ALLOWED
            assert "POST" in pre.headers["access-control-allow-methods"]
            allowed = pre.headers["access-control-allow-headers"].lower()
            assert "authorization" in allowed and "content-type" in allowed

        got = http.get("/v1/models", headers={"origin": ALLOWED, **key})
        assert got.status_code == 200
        assert got.headers["access-control-allow-origin"] == ALLOWED
        assert "origin" in got.headers["vary"].lower()
        no_key = http.get("/v1/models", headers={"origin": ALLOWED})  # the page can read a 401
        assert no_key.status_code == 401
        assert no_key.headers["access-control-allow-origin"] == ALLOWED
        posted = http.post(
            "/v1/files", files={"file": ("a.jsonl", b"{}\n")}, headers={"origin": ALLOWED, **key}
        )
        assert posted.headers["access-control-allow-origin"] == ALLOWED

        evil = {**PREFLIGHT, "origin": "http://evil.example"}
        for response in (
            http.options("/v1/fine_tuning/jobs", headers=evil),
            http.get("/v1/models", headers={"origin": "http://evil.example", **key}),
            http.get("/v1/models", headers={"origin": "http://localhost:3001", **key}),
        ):
            assert response.status_code == 403
            assert not any(h.startswith("access-control-") for h in response.headers)
        same = http.get("/v1/models", headers={"origin": url, **key})
        assert same.status_code == 200 and "access-control-allow-origin" not in same.headers
        plain = http.get("/v1/models", headers=key)
        assert "access-control-allow-origin" not in plain.headers
        rebound = http.options("/v1/models", headers={**PREFLIGHT, "host": "evil.example"})
        assert rebound.status_code == 400 and "access-control-allow-origin" not in rebound.headers
