"""The ``pbx`` command.

``pbx serve --config sip.conf`` runs one PBX node.  Every address, port and the
data directory can be overridden on the command line so several instances
(tests, a staging node) can run side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from pbx.config import ConfigError, PortRange, load_config


def _port_range(text: str) -> PortRange:
    try:
        return PortRange.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbx", description="Open cloud PBX and contact-center telephony server."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the PBX (SIP, media and admin API)",
        description="Run one PBX node. Command-line options override the config file.",
    )
    serve.add_argument("--config", "-c", metavar="FILE", help="sip.conf-style INI file")
    serve.add_argument("--bind", metavar="ADDR", help="IP address to listen on (IPv4 or IPv6)")
    serve.add_argument("--sip-port", type=int, metavar="PORT", help="SIP port for UDP and TCP")
    serve.add_argument("--tls-port", type=int, metavar="PORT",
                       help="SIP port for TLS (default: --sip-port + 1 when --sip-port is given)")
    serve.add_argument("--http-port", type=int, metavar="PORT", help="admin API / web port")
    serve.add_argument("--https-port", type=int, metavar="PORT",
                       help="admin API / web / provisioning port over TLS (0: off)")
    serve.add_argument("--rtp-ports", type=_port_range, metavar="A-B", help="RTP port range")
    serve.add_argument("--data-dir", metavar="DIR", help="data directory (database, recordings)")
    serve.add_argument("--database-url", metavar="URL",
                       help="SQLAlchemy URL, e.g. postgresql://host/db (default: SQLite in data dir)")
    serve.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        tls_port = args.tls_port
        if tls_port is None and args.sip_port is not None:
            tls_port = args.sip_port + 1
        config = config.with_overrides(
            bind=args.bind,
            udp_port=args.sip_port,
            tcp_port=args.sip_port,
            tls_port=tls_port,
            http_port=args.http_port,
            https_port=args.https_port,
            rtp_port_min=args.rtp_ports.low if args.rtp_ports else None,
            rtp_port_max=args.rtp_ports.high if args.rtp_ports else None,
            data_dir=args.data_dir,
            database_url=args.database_url,
            log_level=args.log_level,
        )
    except ConfigError as exc:
        print(f"pbx: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.general.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from pbx.node import run

    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(config))
    return uvloop.run(run(config))


if __name__ == "__main__":
    sys.exit(main())
