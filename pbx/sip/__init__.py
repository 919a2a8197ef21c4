"""Pure (sans-IO) SIP: message model, parser, transactions, digest auth (RFC 3261)."""
