"""The grokking study: its experiments, analysis and figures."""
