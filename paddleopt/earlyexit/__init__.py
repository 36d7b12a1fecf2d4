"""Early exit (dynamic inference): multi-exit networks, joint training, threshold calibration
to an accuracy budget, chained-segment deployment on any backend. See docs/EARLY_EXIT.md.
Imports nothing heavy: each module imports paddle inside its functions."""
