"""The optimisation-failure study (the toy autoencoder on the identity): its experiment, analysis and figures."""
