"""``python -m sandbox.salesforce``: serve one emulated i360 Lightning org in the foreground."""

from __future__ import annotations

import argparse

from sandbox.salesforce.schema import DEFAULT_NAMESPACE
from sandbox.salesforce.server import serve_forever
from sandbox.salesforce.state import OrgSpec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="improveit360 (Salesforce) API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8083)
    parser.add_argument("--org-id", default="00D000000000001AAA")
    parser.add_argument("--client-id", default="3MVG9.demo")
    parser.add_argument("--client-secret", default="sfsecret")
    parser.add_argument("--username", default="api@acme.example")
    parser.add_argument("--password", default="pw")
    parser.add_argument("--security-token", default="tok")
    parser.add_argument("--refresh-token", default="5Aep861.demo")
    parser.add_argument("--opportunities", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--daily-limit", type=int, default=15_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    args = parser.parse_args(argv)
    spec = OrgSpec(
        org_id=args.org_id,
        client_id=args.client_id,
        client_secret=args.client_secret,
        username=args.username,
        password=args.password,
        security_token=args.security_token,
        refresh_token=args.refresh_token,
        opportunities=args.opportunities,
        seed=args.seed,
        daily_limit=args.daily_limit,
        namespace=args.namespace,
    )
    print(
        f"improveit360 (Salesforce) emulator for org {spec.org_id} on http://{args.host}:{args.port}"
    )
    serve_forever([spec], host=args.host, port=args.port, batch_size=args.batch_size)


if __name__ == "__main__":
    main()
