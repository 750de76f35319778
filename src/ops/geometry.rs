//! bimg's geometry (spec §9): pure math.
