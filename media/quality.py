"""Call quality as an estimated MOS: the ITU-T G.107 E-model, simplified (pure).

The full model has some twenty inputs; with the defaults of G.107 Table 2
(no echo, quiet rooms, standard handsets) they fold into the constant
R0 − Is = 93.2, leaving what a media relay can measure:

    R = 93.2 − Id(Ta) − Ie,eff(codec, Ppl, BurstR)

``Id`` is the delay impairment in the Cole–Rosenbluth approximation of G.107
§7.3 (linear below 177.3 ms, steeper above), ``Ie,eff`` the equipment
impairment under packet loss (G.107 §7.4, eq. 7-29) with ``Ie``/``Bpl`` per
codec from G.113 Appendix I.  MOS from R is G.107 Annex B (B-4).  Jitter has
no term of its own in the E-model: a jitter buffer turns it into delay, so it
enters ``Ta`` as twice the RFC 3550 interarrival jitter.
"""

from __future__ import annotations

R_DEFAULT = 93.2  # R0 - Is with every G.107 default (§7.1)

# codec: (Ie, Bpl) — G.113 Appendix I; G.711 with packet-loss concealment
CODEC_IMPAIRMENT: dict[str, tuple[float, float]] = {
    "PCMU": (0.0, 25.1),
    "PCMA": (0.0, 25.1),
    "G729": (11.0, 19.0),
}
UNKNOWN_CODEC = (10.0, 20.0)  # a middling narrow-band codec when we do not know better


def delay_impairment(delay_ms: float) -> float:
    """Id for one-way mouth-to-ear delay Ta (echo-free, G.107 §7.3 approximated)."""
    ta = max(0.0, delay_ms)
    return 0.024 * ta + (0.11 * (ta - 177.3) if ta > 177.3 else 0.0)


def effective_equipment_impairment(codec: str, loss_pct: float, burst_ratio: float = 1.0) -> float:
    """Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl)  (G.107 eq. 7-29)."""
    ie, bpl = CODEC_IMPAIRMENT.get(codec.upper(), UNKNOWN_CODEC)
    ppl = min(max(loss_pct, 0.0), 100.0)
    return ie + (95.0 - ie) * ppl / (ppl / burst_ratio + bpl)


def r_factor(
    codec: str = "PCMU", *, loss_pct: float = 0.0, delay_ms: float = 0.0,
    jitter_ms: float = 0.0, burst_ratio: float = 1.0,
) -> float:
    """The transmission rating R (0..100) for a call leg."""
    ta = delay_ms + 2.0 * jitter_ms
    return R_DEFAULT - delay_impairment(ta) - effective_equipment_impairment(
        codec, loss_pct, burst_ratio
    )


def mos_from_r(r: float) -> float:
    """G.107 Annex B: the MOS (1..4.5) that listeners would give a call rated R."""
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6


def estimate_mos(
    codec: str = "PCMU", *, loss_pct: float = 0.0, delay_ms: float = 0.0,
    jitter_ms: float = 0.0, burst_ratio: float = 1.0,
) -> float:
    """MOS from loss (%), one-way delay (ms) and interarrival jitter (ms), to 2 decimals."""
    r = r_factor(
        codec, loss_pct=loss_pct, delay_ms=delay_ms, jitter_ms=jitter_ms, burst_ratio=burst_ratio
    )
    return round(mos_from_r(r), 2)
