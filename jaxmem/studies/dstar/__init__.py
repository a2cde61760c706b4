"""The dstar study: its experiments, analysis and figures."""
