"""Measurement flags: one bit mask for every table aperflow writes, documented once.

A flag column (``flags``, ``flags_r3.5``, ...) is the OR of these bits; 0 means clean.
The README's decode table is generated from :data:`FLAG_BITS` (see :func:`describe`).
"""

from __future__ import annotations

__all__ = ["FLAG_BITS", "describe", "decode"]

MASKED = 1  #: the aperture contains masked/bad pixels (left out of the sum)
SATURATED = 2  #: the aperture contains a saturated pixel (DQ or level)
COSMIC_RAY = 4  #: the aperture contains a cosmic-ray / jump pixel
EDGE = 8  #: the aperture is truncated by the image edge
SKY_FEW_PIXELS = 16  #: the sky annulus has fewer usable pixels than required
NONPOSITIVE = 32  #: the net flux is zero or negative (magnitude NaN, see upper limits)
NONMONOTONIC = 64  #: the curve of growth decreases at this radius (standard stars)
CENTROID = 128  #: the centroid failed or moved more than allowed; the guess was used
OFF_IMAGE = 256  #: the position or region lies outside the image footprint
REPAIRED = 512  #: pixels inside the aperture were repaired (interpolated)
NO_SKY = 1024  #: no usable sky estimate; the flux is not sky-subtracted

FLAG_BITS: dict[int, tuple[str, str]] = {
    MASKED: ("MASKED", "aperture contains masked/bad pixels, left out of the sum"),
    SATURATED: ("SATURATED", "aperture contains a saturated pixel"),
    COSMIC_RAY: ("COSMIC_RAY", "aperture contains a cosmic-ray/jump pixel"),
    EDGE: ("EDGE", "aperture truncated by the image edge"),
    SKY_FEW_PIXELS: ("SKY_FEW_PIXELS", "sky annulus has too few usable pixels"),
    NONPOSITIVE: ("NONPOSITIVE", "net flux <= 0: magnitude NaN, use the upper limits"),
    NONMONOTONIC: ("NONMONOTONIC", "curve of growth decreases at this radius"),
    CENTROID: ("CENTROID", "centroid failed or moved too far; the initial position was used"),
    OFF_IMAGE: ("OFF_IMAGE", "position/region outside the image footprint"),
    REPAIRED: ("REPAIRED", "repaired (interpolated) pixels inside the aperture"),
    NO_SKY: ("NO_SKY", "no usable sky estimate; flux not sky-subtracted"),
}


def decode(value: int) -> list[str]:
    """Names of the bits set in ``value``."""
    return [name for bit, (name, _) in FLAG_BITS.items() if int(value) & bit]


def describe() -> str:
    """Markdown table of the flag bits (for the README)."""
    lines = ["| bit | value | name | meaning |", "|---|---|---|---|"]
    for bit, (name, meaning) in FLAG_BITS.items():
        lines.append(f"| {bit.bit_length() - 1} | {bit} | `{name}` | {meaning} |")
    return "\n".join(lines)
