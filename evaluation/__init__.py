"""Verification and IJB evaluation: embedding pairs, the insightface protocols' metrics and ROC curves."""
