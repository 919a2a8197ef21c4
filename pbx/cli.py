"""The ``pbx`` command.

``pbx serve --config sip.conf`` runs one PBX node.  Every address, port and the
data directory can be overridden on the command line so several instances
(tests, a staging node) can run side by side.  ``pbx ivr simulate`` walks an
IVR of the store with a list of keys; ``pbx softphone`` is a SIP phone.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import datetime

from pbx.config import ConfigError, PortRange, load_config


def _port_range(text: str) -> PortRange:
    try:
        return PortRange.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a number of workers: {text}")
    return int(text)


def _steps(text: str) -> list[str]:
    steps = [step.strip() for step in text.split(",") if step.strip()]
    wrong = [step for step in steps if step != "timeout" and (len(step) != 1
                                                             or step not in "0123456789*#")]
    if wrong:
        raise argparse.ArgumentTypeError(f"not a key or timeout: {', '.join(wrong)}")
    return steps


def _instant(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time like 2026-12-24T10:00: {text}") from None


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
    serve.add_argument("--workers", type=_count, metavar="N",
                       help="worker processes sharing the SIP port (default: [general] "
                            "workers, else one per core; 1: a single process)")
    ivr = commands.add_parser("ivr", help="IVR trees", description="IVR trees of the store.")
    ivr_commands = ivr.add_subparsers(dest="ivr_command", required=True, metavar="COMMAND")
    sim = ivr_commands.add_parser(
        "simulate", help="walk an IVR with a list of keys",
        description="Print the menus a caller pressing DIGITS would pass, what they would "
                    "hear and where they would be sent. Nothing is called.",
    )
    sim.add_argument("name", help="the IVR's name")
    sim.add_argument("--digits", type=_steps, default=[], metavar="KEYS",
                     help="keys in order, comma-separated; timeout: a silence (1,timeout,2)")
    sim.add_argument("--at", type=_instant, metavar="TIME",
                     help="when the call comes, ISO 8601 (2026-12-24T10:00; without an "
                          "offset: the organisation's time zone); default now")
    sim.add_argument("--organisation", metavar="SLUG", help="default: the default one")
    sim.add_argument("--config", "-c", metavar="FILE", help="sip.conf-style INI file")
    sim.add_argument("--data-dir", metavar="DIR", help="data directory (the store)")
    sim.add_argument("--database-url", metavar="URL", help="SQLAlchemy URL of the store")
    softphone = commands.add_parser(
        "softphone", help="a SIP phone on the command line (tests, probes, agents)",
        description="Register as a SIP device of the PBX, place or answer a call, play a "
                    "file into it, record what comes back, send DTMF; or, with --interactive, "
                    "a phone for an agent at a terminal.")
    from softphone.cli import add_arguments

    add_arguments(softphone)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "ivr":
        return _ivr(args)
    if args.command == "softphone":
        from softphone.cli import main as softphone

        return softphone(args)
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
    from pbx.supervisor import default_workers, run_node, supervise

    workers = args.workers or config.general.workers or default_workers()
    return run_node(config) if workers == 1 else supervise(config, workers)


def _ivr(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config).with_overrides(
            data_dir=args.data_dir, database_url=args.database_url)
    except ConfigError as exc:
        print(f"pbx: {exc}", file=sys.stderr)
        return 2
    from ivr.command import simulate_command

    return simulate_command(config, args.name, args.digits, args.at, args.organisation,
                            sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
