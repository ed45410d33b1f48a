"""Schemathesis hooks for Janua's API fuzzing (`tests/api/schemathesis.rs` sets SCHEMATHESIS_HOOKS).

Authentication: every request carries a bearer token, fetched afresh every few seconds because
the fuzzer itself signs out, revokes sessions and tokens, and must get back in. SCIM routes get a
SCIM token of an organization these hooks create; every other route, REST or GraphQL, an access
token of the administrator JANUA_FUZZ_EMAIL / JANUA_FUZZ_PASSWORD on JANUA_FUZZ_BASE.
"""

import json
import os
import urllib.request

import schemathesis

BASE = os.environ["JANUA_FUZZ_BASE"]
EMAIL = os.environ["JANUA_FUZZ_EMAIL"]
PASSWORD = os.environ["JANUA_FUZZ_PASSWORD"]
ORGANIZATION = {}


def call(method, path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(BASE + path, data=json.dumps(body).encode(), headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


def access_token():
    return call("POST", "/api/v1/auth/signin", {"email": EMAIL, "password": PASSWORD})["tokens"]["access_token"]


def scim_token():
    token = access_token()
    if "id" not in ORGANIZATION:
        ORGANIZATION["id"] = call("POST", "/api/v1/organizations", {"name": "Fuzz SCIM"}, token)["id"]
    return call("POST", f"/api/v1/organizations/{ORGANIZATION['id']}/scim/tokens", {"name": "fuzz"}, token)["token"]


def is_scim(context) -> bool:
    return "/scim/v2" in context.operation.path


@schemathesis.auth(refresh_interval=3, cache_by_key=lambda case, context: "scim" if is_scim(context) else "user")
class JanuaAuth:
    def get(self, case, context):
        return scim_token() if is_scim(context) else access_token()

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


# Janua's own scalars, which schemathesis cannot generate by itself ("Unknown GraphQL Scalar").
from hypothesis import strategies as st  # noqa: E402
from schemathesis.graphql import nodes  # noqa: E402

schemathesis.graphql.scalar("DateTime", st.datetimes().map(lambda d: nodes.String(d.isoformat() + "Z")))
schemathesis.graphql.scalar("NaiveDate", st.dates().map(lambda d: nodes.String(d.isoformat())))
schemathesis.graphql.scalar(
    "JSON", st.one_of(st.integers(-1000, 1000).map(nodes.Int), st.text(max_size=20).map(nodes.String))
)
