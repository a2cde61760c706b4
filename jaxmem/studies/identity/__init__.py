"""The identity study: its experiments, analysis and figures."""
