"""``python -m sandbox.leadperfection``: serve one emulated LP client in the foreground."""

from __future__ import annotations

import argparse

from sandbox.leadperfection.data import LPClientSpec
from sandbox.leadperfection.server import serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="LeadPerfection API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--clientid", default="wq55a")
    parser.add_argument("--username", default="api.user")
    parser.add_argument("--password", default="pw")
    parser.add_argument("--appkey", default="0f8fad5b-d9cb-469f-a165-70867728950e")
    parser.add_argument("--prospects", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timezone", default="America/New_York")
    args = parser.parse_args(argv)
    spec = LPClientSpec(
        clientid=args.clientid,
        username=args.username,
        password=args.password,
        appkey=args.appkey,
        prospects=args.prospects,
        seed=args.seed,
        timezone=args.timezone,
    )
    print(f"LeadPerfection emulator for client {spec.clientid} on http://{args.host}:{args.port}")
    serve_forever([spec], host=args.host, port=args.port)


if __name__ == "__main__":
    main()
