"""Call control: the B2BUA in small parts (see :mod:`pbx.calls.b2bua`, the
facade), and the application interface services attach through
(:mod:`pbx.calls.channel`)."""
