#!/usr/bin/env python3
"""Runs scim2-tester's checks against a live SCIM server.

Usage: conformance.py --url https://host/api/v1/scim/v2 --token jscim_...

Prints a JSON array on stdout, one object per check: title, status (scim2-tester's Status name,
lower-cased: success, compliant, acceptable, deviation, error, critical, skipped), reason,
resource_type. Exits 0 whenever the checks ran (judging them is the caller's business), 2 when
they could not run at all.
"""

import argparse
import json
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the SCIM base URL (…/scim/v2)")
    parser.add_argument("--token", required=True, help="a SCIM bearer token")
    args = parser.parse_args()

    http = httpx2.Client(
        base_url=args.url.rstrip("/") + "/",
        headers={"Authorization": f"Bearer {args.token}"},
        timeout=60,
    )
    try:
        results = check_server(SyncSCIMClient(http))
    except Exception as exc:  # the checker itself failed: say why, for the test's message
        print(f"scim2-tester could not run: {exc!r}", file=sys.stderr)
        return 2
    finally:
        http.close()

    json.dump(
        [
            {
                "title": r.title,
                "status": r.status.name.lower(),
                "reason": r.reason,
                "resource_type": r.resource_type,
            }
            for r in results
        ],
        sys.stdout,
        indent=1,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
