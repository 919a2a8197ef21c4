"""The PBX core: SIP stack, transports, registrar, router and the `pbx` command."""
