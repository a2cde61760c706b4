"""The smdd study: its experiments, analysis and figures."""
