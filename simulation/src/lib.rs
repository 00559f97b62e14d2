//! damselfly-sim (being built)
