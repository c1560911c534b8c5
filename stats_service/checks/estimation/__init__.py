"""Model performance estimated without labels: CBPE for classifiers that return
probabilities (`cbpe`, on probabilities calibrated on the baseline's labelled reference
rows, `calibration`), a direct-loss model for regressions (`direct_loss`), and the band
the reference's sampling error allows at a window's size (`bands`)."""
