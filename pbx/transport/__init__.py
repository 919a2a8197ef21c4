"""The only place with SIP sockets: UDP, TCP and TLS adapters around the pure stack."""
