"""demo: end-to-end programs behind `jointml demo` (credit scoring, joint statistics, TECC)."""
