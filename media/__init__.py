"""Media engine: RTP, codecs, jitter buffers and the one-clock numpy mixer."""
